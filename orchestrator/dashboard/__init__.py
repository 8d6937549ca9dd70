"""The cost-of-human-labor dashboard: pure views (ledger -> plotly figures and key numbers), an
HTML renderer (one self-contained page) and a read-only FastAPI app serving the same views.

    from clicloop.orchestrator.dashboard import write_html_report
    write_html_report("sqlite:///clicloop-quickstart.db", "report.html")

plotly, fastapi and uvicorn (the ``dashboard`` extra) are imported only when a view is built.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "build_views": "clicloop.orchestrator.dashboard.views",
    "VIEWS": "clicloop.orchestrator.dashboard.views",
    "Filters": "clicloop.orchestrator.dashboard.source",
    "read_only_engine": "clicloop.orchestrator.ledger.readonly",
    "render_page": "clicloop.orchestrator.dashboard.render",
    "write_html_report": "clicloop.orchestrator.dashboard.render",
    "create_app": "clicloop.orchestrator.dashboard.app",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'clicloop.orchestrator.dashboard' has no attribute {name!r}")
