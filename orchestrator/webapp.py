"""What clicloop's HTTP apps (the dashboard, ``serve ingest``, ``serve labelstudio``) share.

FastAPI is imported by the apps, never here, so this module stays import-free.
"""

from __future__ import annotations

from typing import Any


def answer_head(app: Any) -> None:
    """Let every GET route of ``app`` answer HEAD too, with the GET's status and headers and no
    body (RFC 9110, section 9.3.2: a general-purpose server must support HEAD). FastAPI's
    ``@app.get`` answers HEAD with 405, and uptime monitors often probe with HEAD, so a healthy
    server looked down. Call it once every route is declared."""
    for route in app.routes:
        methods = getattr(route, "methods", None)
        if isinstance(methods, set) and "GET" in methods:
            methods.add("HEAD")
