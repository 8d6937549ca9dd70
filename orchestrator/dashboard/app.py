"""The dashboard as a read-only web app (FastAPI): the same views as ``clicloop report --html``.

Routes (GET only; filters as query parameters ``loop``, ``backend``, ``model_version``,
``date_from``, ``date_to``, ``target``):

- ``/``: every view on one page, with the filter form;
- ``/view/{name}``: one view alone (names: ``clicloop.orchestrator.dashboard.views.VIEWS``);
- ``/api/views`` and ``/api/views/{name}``: the same as JSON (numbers, tables, plotly figures);
- ``/assets/plotly.min.js``: plotly.js from the installed plotly package (no CDN);
- ``/healthz``.

The ledger is opened read-only (SQLite ``mode=ro``, PostgreSQL read-only sessions).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from clicloop.orchestrator.config import Stop, WageFloor
from clicloop.orchestrator.errors import ClicloopError, LedgerError

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; "
                               "img-src 'self' data: blob:; font-src data:; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def create_app(ledger_url: str, *, floor: WageFloor | None = None, stops: Mapping[str, Stop] | None = None) -> Any:
    """A FastAPI app serving the views of the ledger at ``ledger_url``, read-only; ``stops``
    (loop name -> its config's stop rules) gives the forecast its targets and budgets."""
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse

    import plotly

    from clicloop.orchestrator.dashboard import queries
    from clicloop.orchestrator.dashboard.render import PageOptions, page_json, render_page
    from clicloop.orchestrator.dashboard.source import Filters, loop_infos, read_only_engine
    from clicloop.orchestrator.dashboard.views import VIEWS, build_views
    from clicloop.orchestrator.ledger.db import redact

    engine = read_only_engine(ledger_url)
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(title="clicloop dashboard", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.engine = engine

    @app.exception_handler(ClicloopError)
    async def _clicloop_error(request: Request, exc: ClicloopError) -> Any:
        status = 404 if isinstance(exc, LedgerError) and "no " in str(exc) else 400
        return PlainTextResponse(f"{exc}\n", status_code=status, headers=HEADERS)

    def params(loop: str | None, backend: str | None, model_version: str | None, date_from: str | None,
               date_to: str | None) -> Filters:
        return Filters(loop or None, backend or None, model_version or None, date_from or None, date_to or None)

    def page(names: list[str] | None, filters: Filters, target: float | None, alone: bool) -> HTMLResponse:
        views = build_views(engine, filters, names, floor=floor, target=target, stops=stops)
        infos = loop_infos(engine)
        form = {"loop": [i.name for i in infos], "backend": queries.backends(engine),
                "model_version": queries.model_versions(engine, filters.loop)}
        query = filters.query(target=target)
        opts = PageOptions(ledger_label=redact(ledger_url), filters=filters, target=target, plotly_src="/assets/plotly.min.js",
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

    return app


def _finite(value: Any) -> Any:
    """JSON has no infinity: unbounded forecasts become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
