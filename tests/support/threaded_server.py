"""Serve an ASGI app with uvicorn on 127.0.0.1, in a thread of the test process, for HTTP tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.support.labelstudio_server import free_port


@contextmanager
def serve_in_thread(app: Any, port: int | None = None, startup_timeout_s: float = 20.0) -> Iterator[str]:
    """The app's base URL while it serves on ``port`` (else a free one); stopped on exit."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
