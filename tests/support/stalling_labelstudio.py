"""A Label Studio that hangs on writes, for the ML backend's shutdown and latency tests.

It answers the one call training needs (``GET /api/tasks``: the given tasks with their
annotations) and holds every ``PATCH /api/tasks/<id>`` open without answering until it is
closed, as a Label Studio stuck on a slow database would. A real Label Studio cannot be made
to hang on demand; everything else in those tests is real.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Stalling:
    url: str
    patched: list[str] = field(default_factory=list)  # the paths of the PATCHes received (and held)
    release: threading.Event = field(default_factory=threading.Event)


@contextmanager
def stalling_labelstudio(tasks: list[dict[str, Any]]) -> Iterator[Stalling]:
    """Serve on a free 127.0.0.1 port until the block ends (held PATCHes are then let go)."""
    state: Stalling

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.startswith("/api/tasks?"):
                self._reply(200, {"tasks": tasks, "total": len(tasks)})
            else:
                self._reply(404, {"detail": "not found"})

        def do_PATCH(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.patched.append(self.path)
            state.release.wait()
            self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state = Stalling(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
