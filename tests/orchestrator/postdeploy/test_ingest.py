"""Ingest: the Python call and the JSONL follower, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.postdeploy import DeploymentStore, Ingestor, ingest
from clicloop.orchestrator.postdeploy.follower import FileFollower

LABELS = ["music", "timer", "weather"]


def rec(i: int, **kw: object) -> dict:
    base = {"id": f"p{i}", "model_version": "v1", "predicted_label": "music", "text": f"play song {i}",
            "confidence": 0.9, "time": 1_700_000_000 + i}
    return {**base, **kw}


@pytest.fixture
def store(ledger_url: str):
    with Ledger(ledger_url) as ledger:
        st = DeploymentStore(ledger, "assistant")
        st.register_version("v1", LABELS)
        yield st


def test_python_call_records_once_and_quarantines_unknown_versions_and_labels(store: DeploymentStore) -> None:
    batch = [rec(0), rec(1, feedback="thumbs_down"), rec(2, model_version="v9"), rec(3, predicted_label="cooking"),
             rec(4, probabilities={"music": 0.5, "cooking": 0.5}), rec(1)]
    first = ingest(store.ledger, "assistant", batch)
    assert (first.accepted, first.quarantined, first.duplicates) == (2, 3, 0)
    assert [i for i, _ in first.rejected] == [5]  # p1 again, saying something else (no feedback): not a replay
    again = ingest(store.ledger, "assistant", batch)
    assert (again.accepted, again.quarantined, again.duplicates, len(again.rejected)) == (0, 0, 5, 1)
    rows = {r["prediction_id"]: r for r in store.predictions(status=None)}
    assert rows["p2"]["status"] == "quarantined" and "unknown model version 'v9'" in rows["p2"]["reason"]
    assert "'cooking' is not in the label set" in rows["p3"]["reason"]
    assert "outside the label set" in rows["p4"]["reason"]
    assert rows["p1"]["feedback"] == "thumbs_down"
    assert Ingestor(store).counts() == {"accepted": 2, "quarantined": 3, "rejected": 1}


def test_a_prediction_id_sent_again_with_other_content_is_rejected_and_the_first_record_kept(store: DeploymentStore) -> None:
    """A complaint sent after its prediction was counted as a duplicate and dropped without a
    word, as was the same id with another text or label; a replay stays a duplicate."""
    Ingestor(store).ingest([rec(1), rec(2)])
    later = Ingestor(store).ingest([rec(1, feedback="thumbs_down"), rec(2, predicted_label="timer", confidence=0.4), rec(1), rec(3),
                                    rec(3, text="other")])
    assert (later.accepted, later.duplicates) == (1, 1)
    reasons = dict(later.rejected)
    assert sorted(reasons) == [0, 1, 4]
    assert "'p1' was recorded before with another feedback" in reasons[0] and "feedback is taken only" in reasons[0]
    assert "another predicted_label, confidence" in reasons[1] and "feedback" not in reasons[1]
    assert "'p3'" in reasons[4] and "another text" in reasons[4]
    rows = {r["prediction_id"]: r for r in store.predictions(status=None)}
    assert rows["p1"]["feedback"] is None and rows["p2"]["predicted_label"] == "music" and rows["p3"]["text"] == "play song 3"
    assert Ingestor(store).counts()["rejected"] == 3
    Ingestor(store).ingest([rec(1, feedback="thumbs_down")])  # a retry is counted once
    assert Ingestor(store).counts()["rejected"] == 3


def test_malformed_records_are_rejected_with_a_reason_and_counted_once(store: DeploymentStore) -> None:
    bad = [{"id": "x"}, "not json", 42, rec(5, confidence=1.5), rec(6, text=None), rec(7, time="yesterday"),
           rec(8, probabilities={"music": 0.2, "timer": 0.2}), rec(9, feedback="rephrased")]
    result = Ingestor(store).ingest(bad + [rec(10)])
    reasons = dict(result.rejected)
    assert result.accepted == 1 and len(result.rejected) == len(bad)
    assert "model_version" in reasons[0] and "not JSON" in reasons[1] and "JSON object" in reasons[2]
    assert "confidence" in reasons[3] and "'text' or 'features'" in reasons[4] and "ISO-8601" in reasons[5]
    assert "sum to" in reasons[6] and "rephrasing" in reasons[7]
    Ingestor(store).ingest(bad)  # a retry of the same bad records
    assert Ingestor(store).counts()["rejected"] == len(bad)


def _write(path: Path, records: list, partial: str = "") -> None:
    with path.open("a", encoding="utf-8") as f:
        for r in records:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
        f.write(partial)


def test_follower_tails_a_growing_file_resumes_and_never_counts_a_replay_twice(store: DeploymentStore, tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    _write(path, [rec(i) for i in range(5)] + ["{broken"], partial='{"id": "p5", "model_ver')
    follower = FileFollower(Ingestor(store), path, batch_lines=2)
    first = follower.poll()
    assert (first.accepted, len(first.rejected)) == (5, 1)
    assert first.rejected[0][0] == 6 and first.as_dict()["errors"][0]["line"] == 6  # the file's line, across batches of 2
    assert follower.poll().accepted == 0  # the half-written line waits for its newline
    with path.open("a", encoding="utf-8") as f:  # the writer finishes the line and goes on
        f.write('sion": "v1", "predicted_label": "timer", "text": "t", "time": 1700000100}\n')
    _write(path, [rec(6), rec(7, model_version="v2")])
    _write(path, ["[1, 2]"])
    resumed = FileFollower(Ingestor(store), path).poll()  # a new process: resumes from the ledger's offset
    assert (resumed.accepted, resumed.quarantined, resumed.duplicates) == (2, 1, 0)
    assert resumed.rejected == [(10, "a record must be a JSON object, not list")]  # line numbers survive the restart
    copy = tmp_path / "replayed.jsonl"  # the same file fed again under another name
    shutil.copy(path, copy)
    replay = FileFollower(Ingestor(store), copy).poll()
    assert (replay.accepted, replay.quarantined, replay.duplicates) == (0, 0, 8)
    assert Ingestor(store).counts() == {"accepted": 7, "quarantined": 1, "rejected": 2}
    path.write_text(json.dumps(rec(20)) + "\n", encoding="utf-8")  # replaced in place: read from the start
    assert FileFollower(Ingestor(store), path).poll().accepted == 1


def test_a_last_line_without_its_newline_is_reported_not_silently_skipped(store: DeploymentStore, tmp_path: Path) -> None:
    """`deploy ingest` of a file whose last line has no newline (a JSON list written by
    ``json.dump``, a writer that ends without one) said accepted 0, rejected 0: the line waits for
    its newline, as it must while a writer may still be writing it, but nothing said so."""
    path = tmp_path / "one.json"
    path.write_text(json.dumps([rec(0), rec(1)]), encoding="utf-8")
    result = FileFollower(Ingestor(store), path).poll()
    assert (result.accepted, result.rejected, result.unfinished_bytes) == (0, [], path.stat().st_size)
    assert result.as_dict()["unfinished_line_bytes"] == path.stat().st_size
    path.write_text(json.dumps(rec(2)) + "\n" + json.dumps(rec(3)), encoding="utf-8")
    result = FileFollower(Ingestor(store), path).poll()
    assert (result.accepted, result.unfinished_bytes) == (1, len(json.dumps(rec(3))))
    assert "unfinished_line_bytes" not in FileFollower(Ingestor(store), tmp_path / "none.jsonl").poll().as_dict()


def test_text_no_database_stores_is_one_rejected_record_not_a_lost_batch(store: DeploymentStore) -> None:
    """Found 2026-12-07: on PostgreSQL a NUL in a record's text (and on both databases a lone
    surrogate) failed the whole batch's insert, its good records with it (a 500 over HTTP; a file
    ingest stopped on that line for ever); a body that was not JSON with a NUL failed its reject row."""
    result = Ingestor(store).ingest([rec(1), rec(2, text="play\x00song"), rec(3, text="play \ud800"),
                                     rec(4, predicted_label="mu\x00sic"), b"not json \x00 \xff"])
    assert result.accepted == 1 and [i for i, _ in result.rejected] == [1, 2, 3, 4]
    assert "text: Value error, holds a NUL character or a lone surrogate" in dict(result.rejected)[1]
    assert [r["prediction_id"] for r in store.predictions(status=None)] == ["p1"]
    assert Ingestor(store).counts() == {"accepted": 1, "quarantined": 0, "rejected": 4}


def test_probabilities_sent_again_in_another_key_order_are_a_replay(store: DeploymentStore) -> None:
    """Found 2026-12-07: a retry whose probabilities listed the same labels in another order was
    rejected as 'recorded before with another probabilities'."""
    Ingestor(store).ingest([rec(1, probabilities={"music": 0.7, "timer": 0.3})])
    again = Ingestor(store).ingest([rec(1, probabilities={"timer": 0.3, "music": 0.7})])
    assert (again.duplicates, again.rejected) == (1, [])


def test_an_id_another_process_records_first_with_other_content_is_rejected_not_counted(store: DeploymentStore) -> None:
    """Found 2026-12-07: two ingest processes on one ledger both answered 'accepted' for the same
    ids; the content that lost the race vanished without a trace (the insert did nothing)."""
    ingestor = Ingestor(store)
    real = store.existing_predictions

    raced: list[bool] = []

    def racing(ids, content=()):  # the other process records p1 between this one's check and its insert
        found = real(ids, content=content)
        if not raced:
            raced.append(True)
            store.existing_predictions = real
            Ingestor(store).ingest([rec(1, predicted_label="timer")])
        return found

    store.existing_predictions = racing
    result = ingestor.ingest([rec(1), rec(2)])
    store.existing_predictions = real
    assert result.accepted == 1 and [i for i, _ in result.rejected] == [0]
    assert "'p1' was recorded before with another predicted_label" in result.rejected[0][1]
    rows = {r["prediction_id"]: r for r in store.predictions(status=None)}
    assert rows["p1"]["predicted_label"] == "timer" and Ingestor(store).counts()["rejected"] == 1
