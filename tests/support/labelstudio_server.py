"""A real Label Studio server on 127.0.0.1 for the integration tests (and the docs/benchmarks).

Nothing is installed here: ``bash .ci/labelstudio`` builds, once, a virtual environment of its
own (``.ci-cache/labelstudio-venv``) and a migrated data-dir template
(``.ci-cache/labelstudio-template``). Each server copies the template into a fresh directory, so
it is healthy in seconds. A missing venv or template FAILS the tests with the command to run.

Use the session fixture ``labelstudio`` (import it into a conftest), or ``LabelStudioServer``
directly in scripts.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("CLICLOOP_LS_CACHE", ROOT / ".ci-cache"))
VENV = CACHE / "labelstudio-venv"
TEMPLATE = CACHE / "labelstudio-template"
SETUP_HINT = "run `bash .ci/labelstudio` (installs Label Studio in its own venv and builds a migrated data dir)"
_SCRUB = ("HOST", "PORT", "USERNAME", "PASSWORD")
# What lets Label Studio reach a backend on this machine: its ML connections (ML_BLOCK_LOCAL_IP)
# and its webhooks, the ML backend's automatic one included (SSRF_PROTECTION_ENABLED).
LOCAL_NETWORK_ENV = {"SSRF_PROTECTION_ENABLED": "false", "ML_BLOCK_LOCAL_IP": "false"}


class LabelStudioUnavailable(RuntimeError):
    """The Label Studio server could not be set up or started."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LabelStudioServer:
    """One throwaway Label Studio server; ``start()`` / ``stop()`` / ``restart()``.

    ``data_dir`` survives ``restart()`` (same database, same port): that is how tests simulate a
    server that goes down mid-loop and comes back. ``network_env`` replaces
    :data:`LOCAL_NETWORK_ENV` (``{}``: Label Studio's own defaults, which refuse local addresses).
    """

    port: int = 0
    data_dir: Path | None = None
    startup_timeout_s: float = 120.0
    username: str = ""
    password: str = ""
    token: str = ""
    network_env: dict[str, str] | None = None
    proc_: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_path_: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LabelStudioServer:
        exe = VENV / "bin" / "label-studio"
        if not exe.exists() or not (TEMPLATE / ".ready").exists():
            raise LabelStudioUnavailable(f"no Label Studio server venv/template under {CACHE}: {SETUP_HINT}")
        self.username, self.password, self.token = (TEMPLATE / ".credentials").read_text().split()[:3]
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="clicloop-ls-"))
            shutil.copytree(TEMPLATE, self.data_dir, dirs_exist_ok=True)
        if not self.port:
            self.port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
        env.update(
            LABEL_STUDIO_BASE_DATA_DIR=str(self.data_dir),
            LABEL_STUDIO_USERNAME=self.username,
            LABEL_STUDIO_PASSWORD=self.password,
            LABEL_STUDIO_USER_TOKEN=self.token,
            LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
            LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
            LATEST_VERSION_CHECK="false",
            SENTRY_DSN="",
            FRONTEND_SENTRY_DSN="",
            COLLECT_ANALYTICS="false",
            LABEL_STUDIO_HOST=self.url,
        )
        for name in LOCAL_NETWORK_ENV:
            env.pop(name, None)
        env.update(LOCAL_NETWORK_ENV if self.network_env is None else self.network_env)
        self.log_path_ = self.data_dir / "server.log"
        log = open(self.log_path_, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        cmd = [str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(self.port)]
        self.proc_ = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        import httpx

        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc_ is not None and self.proc_.poll() is not None:
                raise LabelStudioUnavailable(f"Label Studio exited with {self.proc_.returncode}:\n{self.log_tail()}")
            moved = self._port_from_log()
            if moved and moved != self.port:  # it silently takes the next port when ours is busy
                self.port = moved
            try:
                r = httpx.get(f"{self.url}/health", timeout=2)
                if r.status_code == 200 and r.json().get("status") == "UP":
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.3)
        self.stop()
        raise LabelStudioUnavailable(f"Label Studio not healthy after {self.startup_timeout_s}s:\n{self.log_tail()}")

    def _port_from_log(self) -> int | None:
        if self.log_path_ is None or not self.log_path_.exists():
            return None
        found = re.findall(r"Starting development server at https?://[^:]+:(\d+)", self.log_path_.read_text(errors="replace"))
        return int(found[-1]) if found else None

    def log_tail(self, n: int = 40) -> str:
        if self.log_path_ is None or not self.log_path_.exists():
            return "(no log)"
        return "\n".join(self.log_path_.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        """SIGTERM the server's process group (it stops in ~2 s), SIGKILL if it lingers."""
        proc, self.proc_ = self.proc_, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def restart(self, down_s: float = 0.0) -> None:
        """Stop, stay down ``down_s`` seconds, start again on the same port and data dir."""
        self.stop()
        time.sleep(down_s)
        self.start()

    def cleanup(self) -> None:
        self.stop()
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)


_SHARED: dict[str, LabelStudioServer] = {}


def shared_server() -> LabelStudioServer:
    """The one server of this test process, started on first use and stopped at exit.

    Test modules import the :func:`labelstudio` fixture; a session fixture imported into several
    modules would be instantiated once per module, so the server itself is kept here.
    """
    server = _SHARED.get("server")
    if server is None:
        server = LabelStudioServer().start()
        _SHARED["server"] = server
        atexit.register(server.cleanup)
    elif server.proc_ is None or server.proc_.poll() is not None:
        server.start()  # a test stopped it and failed before bringing it back
    return server


@pytest.fixture(scope="session")
def labelstudio() -> LabelStudioServer:
    """One real Label Studio server for the whole test session (fails, never skips, if absent)."""
    try:
        return shared_server()
    except LabelStudioUnavailable as e:
        pytest.fail(str(e), pytrace=False)
