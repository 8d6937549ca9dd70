"""Prediction ingest with the inputs that broke it (issue #21): a time in milliseconds (year
57971) is rejected naming the field and the record, through the Python call, the JSONL file and
HTTP, and a ledger that already holds one no longer wedges triage; JSON nested 100,000 deep is a
400 naming the request (never a 500), and a reject, not a crash, in a followed file."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert

from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.postdeploy import DeploymentStore, Ingestor
from clicloop.orchestrator.postdeploy.follower import FileFollower
from clicloop.orchestrator.postdeploy.records import parse_record
from clicloop.orchestrator.postdeploy.server import IngestSettings, create_ingest_app
from clicloop.orchestrator.postdeploy.triage import Triage, build_policy
from tests.support.threaded_server import serve_in_thread

MILLIS = 1_767_225_600_000  # 2026-01-01 in epoch milliseconds: year 57971 read as seconds
DEEP = "[" * 100_000 + "]" * 100_000


def rec(i: int, **kw: object) -> dict:
    return {"id": f"r{i}", "model_version": "v1", "predicted_label": "music", "text": f"play {i}", "confidence": 0.4,
            "time": 1_767_225_600 + i, **kw}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DeploymentStore]:
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        store = DeploymentStore(ledger, "bot")
        store.register_version("v1", ["music", "timer"])
        yield store


@pytest.mark.parametrize("when", [MILLIS, -1, 1, 253_402_300_800, "in three days", "1969-12-31T00:00:00Z"])
def test_a_time_out_of_range_is_rejected_naming_the_field(when: object) -> None:
    reason = parse_record(rec(0, time=time.time() + 3 * 86_400 if when == "in three days" else when))
    assert isinstance(reason, str) and reason.startswith("time: ") and "2000-01-01" in reason, reason


def test_a_time_in_milliseconds_is_called_so() -> None:
    reason = parse_record(rec(0, time=MILLIS))
    assert isinstance(reason, str) and "milliseconds" in reason and "1767225600" in reason, reason


def test_a_plausible_time_passes(store: DeploymentStore) -> None:
    ok = [rec(0, time=946_684_800), rec(1, time=time.time() + 3600), rec(2, time="2026-03-01T10:00:00Z")]
    assert Ingestor(store).ingest(ok).accepted == 3


def test_a_file_names_the_line_and_the_field_and_triage_still_runs(store: DeploymentStore, tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [rec(0), rec(1, time=MILLIS), rec(2)]) + DEEP + "\n")
    result = FileFollower(Ingestor(store), path).poll()
    assert result.accepted == 2 and [line for line, _ in result.rejected] == [2, 4]
    assert result.rejected[0][1].startswith("time: ") and "nested" in result.rejected[1][1]
    assert Triage(store, "default", build_policy("low-confidence")).run().decided == 2


def test_a_ledger_that_already_holds_such_a_time_is_triaged_and_the_row_quarantined(store: DeploymentStore) -> None:
    Ingestor(store).ingest([rec(0)])
    with store.engine.begin() as conn:  # as ingest recorded it before it checked the range
        conn.execute(insert(s.pd_predictions).values(
            deployment="bot", prediction_id="ms", model_version="v1", predicted_label="music", text="play", confidence=0.2,
            predicted_at=float(MILLIS), source="http", status="accepted", recorded_at=time.time()))
    summary = Triage(store, "default", build_policy("low-confidence")).run()
    assert summary.decided == 1
    (row,) = store.predictions(ids=["ms"], status=None)
    assert row["status"] == "quarantined" and "time" in row["reason"] and "2000-01-01" in row["reason"]


def test_deep_json_in_a_python_record_is_a_reject_not_a_crash(store: DeploymentStore) -> None:
    deep: object = "leaf"
    for _ in range(5000):
        deep = [deep]
    result = Ingestor(store).ingest([rec(0, features=deep), rec(1)])
    assert result.accepted == 1 and "nested" in result.rejected[0][1]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Ledger(url) as ledger:
        DeploymentStore(ledger, "bot").register_version("v1", ["music", "timer"])
    token = secrets.token_hex(20)
    with serve_in_thread(create_ingest_app(IngestSettings(token=token, ledger=url, deployment="bot",
                                                          max_body_bytes=1024 * 1024))) as base:
        yield base, {"Authorization": f"Bearer {token}", "content-type": "application/json"}


@pytest.mark.integration
def test_http_rejects_milliseconds_and_deep_json_with_400(served: tuple[str, dict[str, str]]) -> None:
    url, headers = served
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        only_bad = http.post("/v1/predictions", json=[rec(0, time=MILLIS)])
        assert only_bad.status_code == 400
        body = only_bad.json()
        assert body["rejected"] == 1 and body["errors"][0]["index"] == 0 and body["errors"][0]["reason"].startswith("time: ")
        assert "record 0" in body["detail"] and "time" in body["detail"]
        mixed = http.post("/v1/predictions", json=[rec(1), rec(2, time=MILLIS)])  # the good record is kept
        assert mixed.status_code == 200 and (mixed.json()["accepted"], mixed.json()["rejected"]) == (1, 1)
        for deep in (DEEP, '{"predictions": ' + DEEP + "}", json.dumps([rec(3, features=None) | {"text": "x"}])[:-1] + "," + DEEP + "]"):
            answer = http.post("/v1/predictions", content=deep.encode())
            assert answer.status_code == 400, (answer.status_code, answer.text[:200])
            assert "nested" in answer.json()["detail"], answer.text[:300]
        assert http.get("/v1/stats").json()["accepted"] == 1  # still serving
