"""Issue #21, the Label Studio ML backend under a Label Studio that hangs on writes: `serve
labelstudio` once ignored SIGTERM for over 15 minutes while acquisition-score writes were
pending, and per-task write-backs shared the request threads, so predictions queued behind
them. Now the writes go through a bounded background queue that /predict never waits on, and
SIGTERM stops the server within seconds, keeping what the ledger recorded."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, func, select

from clicloop.connectors.labelstudio import create_app
from clicloop.connectors.labelstudio.settings import ServeSettings
from clicloop.orchestrator.ledger import schema as s
from tests.conftest import digits_config
from tests.connectors.test_labelstudio_ml import CONFIG, _texts
from tests.support.ml_backend import choice as _choice
from tests.support.ml_backend import wait_for as _wait
from tests.support.labelstudio_server import free_port
from tests.support.threaded_server import serve_in_thread
from tests.support.stalling_labelstudio import Stalling, stalling_labelstudio

LABELED = 12


@pytest.fixture
def stalling() -> Iterator[Stalling]:
    items = _texts(LABELED, seed=3)
    tasks = [{"id": i, "data": {"text": text}, "annotations": [
        {"id": 500 + i, "result": _choice(label), "lead_time": 6.0, "completed_by": 1, "was_cancelled": False,
         "created_at": "2026-03-02T10:00:00Z", "updated_at": "2026-03-02T10:00:00Z"}]}
             for i, (text, label) in enumerate(items, start=1)]
    with stalling_labelstudio(tasks) as ls:
        yield ls


def _trained(http: httpx.Client) -> None:
    """Set project 1 up against the stalling Label Studio and train a first model from it."""
    assert http.post("/setup", json={"project": "1.1", "schema": CONFIG, "access_token": "f" * 40}).status_code == 200
    assert http.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 1}}).json()["status"] == "training"
    _wait(lambda: http.get("/status").json()["projects"][0]["versions"], what="a first model version", timeout=60)


def _predict_body(n: int, offset: int = 0) -> dict[str, Any]:
    return {"project": "1.1", "tasks": [{"id": offset + i, "data": {"text": text}}
                                        for i, (text, _) in enumerate(_texts(n, seed=9 + offset), start=1)]}


def test_predictions_never_wait_on_score_writes_to_a_hanging_label_studio(stalling: Stalling, tmp_path: Path) -> None:
    token = secrets.token_hex(20)
    app = create_app(ServeSettings(token=token, loop="ml", ledger=f"sqlite:///{tmp_path / 'l.db'}", train_every=0,
                                   label_studio_url=stalling.url))
    with serve_in_thread(app) as url, httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        _trained(http)
        # more predictions than the 40 threads the server runs requests (and once, write-backs) on
        for call in range(45):
            r = httpx.post(f"{url}/predict", json=_predict_body(4, offset=100 * call),
                           headers={"Authorization": f"Bearer {token}"}, timeout=20)
            assert r.status_code == 200 and len(r.json()["results"]) == 4, (call, r.status_code)
        _wait(lambda: stalling.patched, what="a write-back reaching Label Studio", timeout=60)
        writes = http.get("/status").json()["projects"][0]["acquisition_writes"]
        assert writes["in_flight"] >= 1 and writes["pending"] >= 1 and writes["written"] == 0


def test_sigterm_stops_the_server_within_seconds_with_writes_pending(stalling: Stalling, tmp_path: Path) -> None:
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump(digits_config(ledger, loop={"name": "ml", "seed": 0, "purpose": "Route e-mails."})))
    token, port = secrets.token_hex(20), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "clicloop", "serve", "labelstudio", "--config", str(config), "--port", str(port),
         "--label-studio-url", stalling.url, "--train-every", "0", "--hourly-wage", "15"],
        cwd=tmp_path, env={**os.environ, "CLICLOOP_ML_TOKEN": token}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            def up() -> bool:
                try:
                    return http.get("/health").status_code == 200
                except httpx.TransportError:
                    assert proc.poll() is None, proc.communicate()[1]
                    return False

            _wait(up, what="the server to start", timeout=60)
            _trained(http)
            assert len(http.post("/predict", json=_predict_body(50)).json()["results"]) == 50
            _wait(lambda: stalling.patched, what="a write-back reaching Label Studio", timeout=60)
            assert http.get("/status").json()["projects"][0]["acquisition_writes"]["pending"] > 0
        proc.send_signal(signal.SIGTERM)
        try:
            _, stderr = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("`clicloop serve labelstudio` did not stop within 10 s of SIGTERM")
        assert proc.returncode in (0, -signal.SIGTERM), stderr  # uvicorn re-raises the signal once it has stopped
        assert "acquisition-score write(s) dropped (the server is stopping" in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    engine = create_engine(ledger)  # what training recorded before the signal is all there
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.assignments)).scalar_one() == LABELED
    engine.dispose()
