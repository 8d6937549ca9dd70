"""The FastAPI app speaking Label Studio's ML-backend protocol.

| call | what clicloop does |
|---|---|
| GET /health | ``{"status": "UP", "model_class": "clicloop"}`` |
| POST /setup | parses the labeling config (a changed one replaces the old), keeps the access token,
  answers the current model version |
| POST /predict | all tasks in one batch: label + confidence as ``score``; acquisition scores go into
  ``task.data["clicloop_acquisition"]`` through a bounded background queue that /predict never
  waits on (a Data Manager column to sort on; see :mod:`~clicloop.connectors.labelstudio.writeback`);
  at most ``predict_embed_limit`` texts the embedding cache lacks are embedded in the call, the other
  tasks answered empty and embedded in the background (:mod:`~clicloop.connectors.labelstudio.deferral`) |
| POST /webhook | ANNOTATION_CREATED / UPDATED / ANNOTATIONS_DELETED into the ledger; START_TRAINING, or
  every N new annotations, retrains in the background; PROJECT_UPDATED brings a changed labeling
  config; other actions are acknowledged |
| GET /versions | every model version trained |
| GET /status | training progress and versions per project |

Every call needs the token (HTTP Basic password, ``Authorization: Bearer|Token``, or the path
prefix ``/t/<token>/`` for Label Studio's own webhooks, which carry no auth header). Bodies are
size-limited and validated: bad requests get 4xx with a reason, never 5xx. On shutdown (SIGTERM)
the score writers stop at once, dropping what is pending with a log line; the ledger keeps what
it recorded.
"""

from __future__ import annotations

import base64
import hmac
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clicloop.backends.labelstudio_format import user_problem
from clicloop.connectors.labelstudio.labelset import LabelConfigError
from clicloop.connectors.labelstudio.projects import Projects
from clicloop.connectors.labelstudio.recorder import AnnotationConflict
from clicloop.connectors.labelstudio.schemas import PredictRequest, SetupRequest, WebhookRequest, project_id
from clicloop.connectors.labelstudio.settings import ServeSettings
from clicloop.orchestrator.errors import ClicloopError
from clicloop.orchestrator.webapp import answer_head

log = logging.getLogger("clicloop.labelstudio.ml")

ANNOTATION_EVENTS = {"ANNOTATION_CREATED": "created", "ANNOTATION_UPDATED": "updated"}


class _Guard:
    """ASGI middleware: token check (header or ``/t/<token>`` prefix) and body-size limit."""

    def __init__(self, app: ASGIApp, token: str, max_body: int):
        self.app, self.token, self.max_body = app, token, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        authorized = False
        if path.startswith("/t/"):
            _, _, rest = path.partition("/t/")
            given, _, tail = rest.partition("/")
            authorized = hmac.compare_digest(given.encode(), self.token.encode())
            scope = {**scope, "path": "/" + tail, "raw_path": ("/" + tail).encode()}
        else:
            headers = dict(scope.get("headers") or [])
            authorized = self._header_ok(headers.get(b"authorization", b"").decode("latin-1"))
        if not authorized:
            await _reply(send, 401, "missing or wrong token: use HTTP Basic (any user, the token as password), "
                                    "'Authorization: Bearer <token>' or the URL prefix /t/<token>/")
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _reply(send, 413, f"request body larger than {self.max_body} bytes")
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                raise HTTPException(413, f"request body larger than {self.max_body} bytes")
            return message

        await self.app(scope, limited, send)

    def _header_ok(self, value: str) -> bool:
        scheme, _, credential = value.partition(" ")
        if scheme.lower() == "basic":
            try:
                credential = base64.b64decode(credential, validate=True).decode().partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                return False
        elif scheme.lower() not in ("bearer", "token"):
            return False
        return hmac.compare_digest(credential.encode(), self.token.encode())


async def _reply(send: Send, status: int, detail: str) -> None:
    import json

    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _project_updated(projects: Projects, pid: int, project: Any) -> dict[str, Any]:
    """A project's settings changed in Label Studio: follow its labeling config."""
    xml = project.get("label_config") if isinstance(project, dict) else None
    if not isinstance(xml, str) or pid not in projects.by_id:
        return {"status": "ignored", "reason": "no labeling config, or a project this backend does not serve"}
    try:
        projects.get(pid, xml)
    except LabelConfigError as e:
        log.warning("project %s: the new labeling config is not served (%s); the previous one stays in use", pid, e)
        return {"status": "ignored", "reason": str(e)}
    return {"status": "recorded", "labels": list(projects.by_id[pid].schema.labels)}


def build_app(settings: ServeSettings) -> FastAPI:
    """The app; see the module docstring for the endpoints."""
    projects = Projects(settings).open()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        projects.close()  # quick: drops pending score writes, never waits on Label Studio

    app = FastAPI(title="clicloop ML backend for Label Studio", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.projects = projects

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()[:10]]
        return JSONResponse({"detail": "invalid request body", "errors": errors}, status_code=422)

    @app.exception_handler(LabelConfigError)
    async def _bad_config(_: Request, exc: LabelConfigError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(ValueError)
    async def _bad_value(_: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(AnnotationConflict)
    async def _conflict(_: Request, exc: AnnotationConflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(ClicloopError)
    async def _clicloop(_: Request, exc: ClicloopError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=502)  # Label Studio or the ledger failed us

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "UP", "model_class": "clicloop", "strategy": settings.strategy_name}

    @app.post("/setup")
    def setup(body: SetupRequest) -> dict[str, Any]:
        model = projects.get(project_id(body.project), body.schema_, body.hostname, body.access_token)
        return {"model_version": model.version}

    @app.post("/predict")
    def predict(body: PredictRequest) -> dict[str, Any]:
        if body.project is None:
            raise HTTPException(422, "project is required")
        model = projects.get(project_id(body.project), body.label_config)
        tasks = [{"id": t.id, "data": t.data} for t in body.tasks]
        results, scores = model.predict(tasks)
        if results and settings.write_acquisition:
            model.queue_acquisition(tasks, scores)  # a bounded background queue: never waits on Label Studio
        return {"results": results, "model_version": model.version}

    @app.post("/webhook")
    def webhook(body: WebhookRequest) -> dict[str, Any]:
        if body.project is None:
            return {"status": "ignored", "reason": "no project in the payload"}
        pid = project_id(body.project)
        if body.action == "START_TRAINING":
            started = projects.get(pid).start_training()
            return {"status": "training" if started else "not started", "job": f"{pid}-{projects.get(pid).next_number_}"}
        if body.action in ANNOTATION_EVENTS:
            if body.annotation is None:
                raise HTTPException(422, f"{body.action} needs an 'annotation'")
            task = body.task or {}
            task_id = task.get("id") if task else body.annotation.task
            if isinstance(task_id, dict):
                task_id = task_id.get("id")
            if not isinstance(task_id, int) or isinstance(task_id, bool):
                raise HTTPException(422, f"{body.action} needs the task id (task.id or annotation.task)")
            if task.get("data") is not None and not isinstance(task["data"], dict):
                raise HTTPException(422, f"task.data must be an object (the task's data fields), not {type(task['data']).__name__}")
            model, event = projects.get(pid), ANNOTATION_EVENTS[body.action]
            problem = user_problem(body.annotation.completed_by) if event == "created" else None
            if problem:
                raise HTTPException(422, problem)
            new = model.on_annotation(event, task_id, body.annotation.model_dump(), task.get("data"))
            if not new and event != "created" and model.recorder_.recorded(body.annotation.id) is None:
                return {"status": "ignored", "reason": f"annotation {body.annotation.id} was never recorded (made before "
                                                       "clicloop was connected, or unknown): nothing to correct"}
            return {"status": "recorded" if new else "already recorded"}
        if body.action == "PROJECT_UPDATED":
            return _project_updated(projects, pid, body.project)
        if body.action == "ANNOTATIONS_DELETED":
            model, n = projects.get(pid), 0
            for a in body.annotations or []:
                if isinstance(a, dict) and isinstance(a.get("id"), int) and not isinstance(a.get("id"), bool):
                    n += model.on_annotation("deleted", 0, a, None)
            return {"status": "recorded", "deleted": n}
        return {"status": "ignored", "action": body.action}

    @app.get("/versions")
    def versions() -> dict[str, Any]:
        all_versions = [v["model_version"] for m in list(projects.by_id.values()) for v in m.versions_]
        return {"versions": all_versions}

    @app.get("/status")
    def status() -> dict[str, Any]:
        return {"projects": [m.status() for m in list(projects.by_id.values())]}

    answer_head(app)
    guarded = _Guard(app, settings.token, settings.max_body_bytes)
    guarded.state = app.state  # type: ignore[attr-defined]  # tests and the CLI reach the projects here
    return guarded
