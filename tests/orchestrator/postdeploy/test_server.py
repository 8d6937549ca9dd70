"""``clicloop serve ingest`` over real HTTP on 127.0.0.1: auth, batches, limits, retries."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.postdeploy import DeploymentStore
from clicloop.orchestrator.postdeploy.server import IngestSettings, create_ingest_app
from tests.support.threaded_server import serve_in_thread


@pytest.fixture
def served(ledger_url: str) -> Iterator[tuple[str, str, str]]:
    with Ledger(ledger_url) as ledger:
        DeploymentStore(ledger, "assistant").register_version("v1", ["music", "timer"])
    token = secrets.token_hex(20)
    app = create_ingest_app(IngestSettings(token=token, ledger=ledger_url, deployment="assistant", max_body_bytes=64 * 1024,
                                           max_records=200))
    with serve_in_thread(app) as url:
        yield url, token, ledger_url


def rec(i: int, **kw: object) -> dict:
    return {"id": f"r{i}", "model_version": "v1", "predicted_label": "music", "text": f"play {i}", "confidence": 0.7,
            "time": "2026-03-01T10:00:00Z", **kw}


def test_ingest_endpoint_is_authenticated_batched_idempotent_and_survives_bad_input(served: tuple[str, str, str]) -> None:
    url, token, ledger_url = served
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/health").json() == {"status": "UP"}
        assert http.post("/v1/predictions", json=[rec(0)]).status_code == 401
        assert http.post("/v1/predictions", json=[rec(0)], headers={"Authorization": "Bearer wrong-token-123456"}).status_code == 401
        batch = [rec(i) for i in range(50)] + [rec(50, model_version="v7"), {"id": "broken"}, rec(51, predicted_label="jazz")]
        first = http.post("/v1/predictions", json={"predictions": batch}, headers=auth).json()
        assert (first["accepted"], first["quarantined"], first["rejected"]) == (50, 2, 1)
        assert first["errors"][0]["index"] == 51 and "model_version" in first["errors"][0]["reason"]
        retry = http.post("/v1/predictions", json=batch, headers=auth).json()  # a client retrying after a timeout
        assert (retry["accepted"], retry["quarantined"], retry["duplicates"]) == (0, 0, 52)
        bad = http.post("/v1/predictions", content=b"{not json", headers={**auth, "content-type": "application/json"})
        assert bad.status_code == 400 and "not JSON" in bad.json()["detail"]
        assert http.post("/v1/predictions", json={"records": []}, headers=auth).status_code == 422
        too_big = http.post("/v1/predictions", json=[rec(i, text="x" * 2000) for i in range(60)], headers=auth)
        assert too_big.status_code == 413
        too_many = http.post("/v1/predictions", json=[rec(i) for i in range(201)], headers=auth)
        assert too_many.status_code == 413 and "split the batch" in too_many.json()["detail"]
        assert http.post("/v1/predictions", json=[rec(99)], headers=auth).json()["accepted"] == 1  # still serving
        assert http.get("/v1/stats", headers=auth).json() == {"accepted": 51, "quarantined": 2, "rejected": 2}
    with Ledger(ledger_url) as ledger:
        rows = DeploymentStore(ledger, "assistant").predictions()
    assert len(rows) == 51 and rows[0]["source"] == "http" and rows[0]["predicted_at"] == 1772359200.0
