"""The dashboard as a read-only web app (FastAPI): the same views as ``clicloop report --html``.

Routes (GET only; filters as query parameters ``loop``, ``backend``, ``model_version``,
``date_from``, ``date_to``, ``target``):

- ``/``: every view on one page, with the filter form;
- ``/view/{name}``: one view alone (names: ``clicloop.orchestrator.dashboard.views.VIEWS``);
- ``/api/views`` and ``/api/views/{name}``: the same as JSON (numbers, tables, plotly figures);
- ``/assets/plotly.min.js``: plotly.js from the installed plotly package (no CDN);
- ``/healthz``.

The ledger is opened read-only (SQLite ``mode=ro``, PostgreSQL read-only sessions). Requests
whose ``Host`` header names another host get 400 (Starlette's ``TrustedHostMiddleware``): a
page on another site cannot reach the dashboard through DNS rebinding to read pay data.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from clicloop.orchestrator.config import Stop, WageFloor
from clicloop.orchestrator.errors import ClicloopError, ConfigError, LedgerError
from clicloop.orchestrator.webapp import answer_head

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; "
                               "img-src 'self' data: blob:; font-src data:; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")


def create_app(ledger_url: str, *, floor: WageFloor | None = None, stops: Mapping[str, Stop] | None = None,
               hosts: Sequence[str] = ()) -> Any:
    """A FastAPI app serving the views of the ledger at ``ledger_url``, read-only; ``stops``
    (loop name -> its config's stop rules) gives the forecast its targets and budgets. It answers
    requests for the local names and ``hosts`` (the names it is reached by) only."""
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    import plotly

    from clicloop.orchestrator.dashboard import queries
    from clicloop.orchestrator.dashboard.render import PageOptions, page_json, render_page
    from clicloop.orchestrator.dashboard.source import Filters, loop_infos, read_only_engine
    from clicloop.orchestrator.dashboard.views import VIEWS, build_views
    from clicloop.orchestrator.credentials import redact_url
    from clicloop.orchestrator.ledger.db import unstorable

    engine = read_only_engine(ledger_url)
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(title="clicloop dashboard", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.engine = engine
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(hosts), www_redirect=False)

    @app.exception_handler(ClicloopError)
    async def _clicloop_error(request: Request, exc: ClicloopError) -> Any:
        status = 404 if isinstance(exc, LedgerError) and "no " in str(exc) else 400
        return PlainTextResponse(f"{exc}\n", status_code=status, headers=HEADERS)

    def params(loop: str | None, backend: str | None, model_version: str | None, date_from: str | None,
               date_to: str | None) -> Filters:
        given = {"loop": loop, "backend": backend, "model_version": model_version, "date_from": date_from, "date_to": date_to}
        for name, value in given.items():  # PostgreSQL refuses a NUL in a query parameter: it was a 500 there
            if value and unstorable(value):
                raise ConfigError(f"the {name} parameter holds a NUL character or a lone surrogate: no {name} is named so",
                                  field=name)
        return Filters(loop or None, backend or None, model_version or None, date_from or None, date_to or None)

    def page(names: list[str] | None, filters: Filters, target: float | None, alone: bool) -> HTMLResponse:
        views = build_views(engine, filters, names, floor=floor, target=target, stops=stops)
        infos = loop_infos(engine)
        form = {"loop": [i.name for i in infos], "backend": queries.backends(engine),
                "model_version": queries.model_versions(engine, filters.loop)}
        query = filters.query(target=target)
        opts = PageOptions(ledger_label=redact_url(ledger_url), filters=filters, target=target, plotly_src="/assets/plotly.min.js",
                           form=form, view_href=None if alone else "/view/{name}" + (f"?{query}" if query else ""), csp=None)
        return HTMLResponse(render_page(views, opts), headers=HEADERS)

    @app.get("/", response_class=HTMLResponse)
    def index(loop: str | None = None, backend: str | None = None, model_version: str | None = None, date_from: str | None = None,
              date_to: str | None = None, target: float | None = None) -> HTMLResponse:
        return page(None, params(loop, backend, model_version, date_from, date_to), target, False)

    @app.get("/view/{name}", response_class=HTMLResponse)
    def one_view(name: str, loop: str | None = None, backend: str | None = None, model_version: str | None = None,
                 date_from: str | None = None, date_to: str | None = None, target: float | None = None) -> HTMLResponse:
        if name not in VIEWS:
            raise HTTPException(404, f"no view {name!r}; views: {', '.join(VIEWS)}")
        return page([name], params(loop, backend, model_version, date_from, date_to), target, True)

    @app.get("/api/views")
    @app.get("/api/views/{name}")
    def api(name: str | None = None, loop: str | None = None, backend: str | None = None, model_version: str | None = None,
            date_from: str | None = None, date_to: str | None = None, target: float | None = None) -> JSONResponse:
        views = build_views(engine, params(loop, backend, model_version, date_from, date_to), [name] if name else None,
                            floor=floor, target=target, stops=stops)
        return JSONResponse(_finite(page_json(views)), headers=HEADERS)

    @app.get("/assets/plotly.min.js")
    def plotly_asset() -> FileResponse:
        return FileResponse(plotly_js, media_type="text/javascript", headers={**HEADERS, "Cache-Control": "max-age=86400"})

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"ok": True, "views": list(VIEWS)}

    answer_head(app)
    return app


def allowed_hosts(hosts: Sequence[str]) -> list[str]:
    """The ``Host`` names the dashboard answers: the local ones and ``hosts`` (IPv6 in brackets);
    a wildcard bind address (0.0.0.0, ::) names no host."""
    names = list(LOCAL_NAMES)
    for host in hosts:
        host = host.strip().lower()
        if host.count(":") == 1:  # name:port; the port does not matter
            host = host.split(":")[0]
        elif ":" in host and not host.startswith("["):  # an IPv6 address, as a Host header writes it
            host = f"[{host}]"
        if "*" in host:
            raise ConfigError(f"--allow-host {host!r}: give host names, not patterns (any name would let DNS rebinding in)",
                              field="allow_host")
        if host and host not in ("0.0.0.0", "[::]") and host not in names:
            names.append(host)
    return names


def _finite(value: Any) -> Any:
    """JSON has no infinity: unbounded forecasts become null; money (Decimal) becomes its exact
    decimal string (clicloop.orchestrator.ledger.money's convention)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
