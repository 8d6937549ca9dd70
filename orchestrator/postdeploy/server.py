"""``clicloop serve ingest``: an HTTP endpoint that takes production predictions in batches.

| call | what it does |
|---|---|
| GET /health | ``{"status": "UP"}`` (no token needed) |
| POST /v1/predictions | a JSON list of records, or ``{"predictions": [...]}``; answers per-batch counts
  (accepted, quarantined, duplicates, rejected with the reason of each) |
| GET /v1/stats | rows recorded so far: accepted, quarantined, rejected |

Every call but /health needs ``Authorization: Bearer <token>``. A body above the size limit gets
413; a body that is not JSON, or JSON nested deeper than a batch of records needs, gets 400 and
is counted as a reject; a bad record inside a batch is rejected with its index and reason (the
field first, e.g. ``time: ...``) while the rest are recorded; a request none of whose records
could be recorded gets 400 with the same counts. Re-sending a batch is harmless (ids).
FastAPI is imported here: import this module only to serve.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from clicloop.orchestrator.errors import ConfigError
from clicloop.orchestrator.postdeploy.ingest import Ingestor
from clicloop.orchestrator.postdeploy.records import MAX_DEPTH, too_deep
from clicloop.orchestrator.webapp import answer_head

log = logging.getLogger("clicloop.postdeploy.server")


@dataclass(frozen=True)
class IngestSettings:
    """token (16+ characters), ledger URL, deployment name, body limit, records per request."""

    token: str
    ledger: str
    deployment: str
    max_body_bytes: int = 16 * 1024 * 1024
    max_records: int = 10_000

    def __post_init__(self) -> None:
        if len(self.token) < 16:
            raise ConfigError("the ingest token must be at least 16 characters (e.g. `openssl rand -hex 20`)")
        if not self.token.isascii() or not self.token.isprintable() or " " in self.token:
            raise ConfigError("the ingest token must be printable ASCII without spaces (HTTP headers carry no other "
                              "characters as written: a client could never send it; e.g. `openssl rand -hex 20`)")
        if self.max_body_bytes < 1024 or self.max_records < 1:
            raise ConfigError("max_body_bytes >= 1024 and max_records >= 1 are required")


def create_ingest_app(settings: IngestSettings) -> Any:
    """The FastAPI app (opens the ledger; closes it on shutdown)."""
    from contextlib import asynccontextmanager

    from starlette.concurrency import run_in_threadpool

    from clicloop.orchestrator.ledger import Ledger
    from clicloop.orchestrator.postdeploy.store import DeploymentStore

    ledger = Ledger(settings.ledger).open()
    ingestor = Ingestor(DeploymentStore(ledger, settings.deployment))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        yield
        ledger.close()

    app = FastAPI(title="clicloop prediction ingest", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.ingestor = ingestor
    expected = settings.token.encode()

    def authorized(request: Request) -> bool:
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(credential.encode(), expected)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "UP"}

    @app.get("/v1/stats")
    async def stats(request: Request) -> JSONResponse:
        if not authorized(request):
            return _unauthorized()
        return JSONResponse(await run_in_threadpool(ingestor.counts))

    @app.post("/v1/predictions")
    async def predictions(request: Request) -> JSONResponse:
        if not authorized(request):
            return _unauthorized()
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > settings.max_body_bytes):
            return JSONResponse({"detail": f"request body larger than {settings.max_body_bytes} bytes"}, status_code=413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > settings.max_body_bytes:
                return JSONResponse({"detail": f"request body larger than {settings.max_body_bytes} bytes"}, status_code=413)
        try:
            parsed = json.loads(body)
            problem = None if not too_deep(parsed, MAX_DEPTH + 2) else f"nested deeper than {MAX_DEPTH + 2} levels"
        except RecursionError:
            problem = "nested too deeply to parse"
        except (ValueError, UnicodeDecodeError) as e:
            problem = f"not JSON: {e}"
        if problem is not None:
            await run_in_threadpool(ingestor.ingest, [bytes(body[:2000])], "http")
            return JSONResponse({"detail": f"the body is {problem}; send a JSON list of prediction records"}, status_code=400)
        records = parsed.get("predictions") if isinstance(parsed, dict) else parsed
        if not isinstance(records, list):
            return JSONResponse({"detail": "send a JSON list of prediction records, or {\"predictions\": [...]}"}, status_code=422)
        if len(records) > settings.max_records:
            return JSONResponse({"detail": f"at most {settings.max_records} records per request; split the batch"}, status_code=413)
        result = await run_in_threadpool(ingestor.ingest, records, "http")
        if result.rejected and not (result.accepted or result.quarantined or result.duplicates):
            index, reason = result.rejected[0]
            return JSONResponse({**result.as_dict(), "detail": f"no record was recorded; record {index}: {reason}"}, status_code=400)
        return JSONResponse(result.as_dict())

    answer_head(app)
    return app


def _unauthorized() -> JSONResponse:
    return JSONResponse({"detail": "missing or wrong token: send 'Authorization: Bearer <token>'"}, status_code=401)
