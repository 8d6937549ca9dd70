"""The clicloop ML backend for Label Studio in tests: in a thread of the test process
(:func:`serve_in_thread`), or as the real ``clicloop serve labelstudio`` command in its own
process (:class:`BackendProcess`), which a test can kill and start again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.labelstudio_server import free_port
from tests.support.threaded_server import serve_in_thread as serve_app

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    url: str
    token: str
    app: Any
    ledger: str


@contextmanager
def serve_in_thread(settings: Any, port: int | None = None) -> Iterator[Served]:
    """``create_app(settings)`` served by uvicorn on 127.0.0.1 (``port``, else a free one), in a thread."""
    from clicloop.connectors.labelstudio import create_app

    app = create_app(settings)
    with serve_app(app, port) as url:
        yield Served(url, settings.token, app, settings.ledger)


def wait_healthy(url: str, token: str, proc: subprocess.Popen[bytes] | None = None, timeout_s: float = 60.0) -> float:
    """Seconds until ``url``/health answers 200 (fails if ``proc`` exits first)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the ML backend exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", headers={"Authorization": f"Bearer {token}"}, timeout=2).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"the ML backend at {url} did not answer /health within {timeout_s}s")


@dataclass
class BackendProcess:
    """``bash -c script`` (a ``clicloop serve labelstudio`` command line) in its own process group."""

    script: str
    cwd: Path
    token: str
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    proc_: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        """Start it; returns the seconds until /health answered."""
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", **self.env}
        log = open(self.cwd / f"backend-{self.port}.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc_ = subprocess.Popen(["bash", "-c", self.script], cwd=self.cwd, env=env, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        try:
            return wait_healthy(self.url, self.token, self.proc_)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.log()}") from e

    def log(self) -> str:
        return (self.cwd / f"backend-{self.port}.log").read_text(errors="replace")[-4000:]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        proc, self.proc_ = self.proc_, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def get(self, path: str) -> Any:
        r = httpx.get(f"{self.url}{path}", headers={"Authorization": f"Bearer {self.token}"}, timeout=30)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: Any) -> Any:
        r = httpx.post(f"{self.url}{path}", json=body, headers={"Authorization": f"Bearer {self.token}"}, timeout=60)
        r.raise_for_status()
        return r.json()


def wait_for(predicate: Any, timeout: float = 60.0, what: str = "condition", explain: Any = None) -> Any:
    """Poll ``predicate`` until it returns something true (returned), or fail naming ``what``
    (and what ``explain()`` says then: e.g. a backend's status and log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{explain()}" if explain is not None else ""))


def sdk_client(ls: Any) -> Any:
    """The official Label Studio SDK client for a test server."""
    from label_studio_sdk import LabelStudio

    return LabelStudio(base_url=ls.url, api_key=ls.token, timeout=120)


def choice(label: str, from_name: str = "topic", to_name: str = "text") -> list[dict[str, Any]]:
    """The result of a single-choice annotation."""
    return [{"from_name": from_name, "to_name": to_name, "type": "choices", "value": {"choices": [label]}}]
