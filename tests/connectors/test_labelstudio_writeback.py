"""The ML backend's acquisition-score writer: bounded, coalescing, never blocking its callers,
and stopped at once (unit tests with a fake Label Studio client)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from clicloop.backends.labelstudio_client import LabelStudioError
from clicloop.connectors.labelstudio.writeback import ScoreWriter


class FakeClient:
    """Records each update; holds it until ``go`` is set; fails the task ids in ``failing``."""

    def __init__(self, hold: bool = False, failing: frozenset[int] = frozenset()):
        self.go = threading.Event()
        if not hold:
            self.go.set()
        self.failing = failing
        self.calls: list[tuple[int, dict[str, Any]]] = []

    def update_task(self, task_id: int, **fields: Any) -> dict[str, Any]:
        self.calls.append((task_id, fields["data"]))
        self.go.wait()
        if task_id in self.failing:
            raise LabelStudioError(f"Label Studio answered 500 to PATCH /api/tasks/{task_id}", status=500)
        return {}


def _until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_writes_go_out_in_the_background_and_a_failure_is_counted_not_fatal() -> None:
    client = FakeClient(failing=frozenset({2}))
    writer = ScoreWriter(lambda: client, 1, workers=2)
    assert writer.submit([(i, {"clicloop_acquisition": i / 10}) for i in range(1, 6)]) == 5
    assert writer.wait_idle(10)
    assert sorted(i for i, _ in client.calls) == [1, 2, 3, 4, 5]
    assert writer.stats() == {"written": 4, "failed": 1, "dropped": 0, "in_flight": 0, "pending": 0}
    writer.stop()


def test_a_full_queue_drops_the_oldest_and_a_newer_score_replaces_a_pending_one(caplog: pytest.LogCaptureFixture) -> None:
    client = FakeClient(hold=True)
    writer = ScoreWriter(lambda: client, 1, workers=1, max_pending=3)
    writer.submit([(1, {"s": 1})])
    _until(lambda: writer.stats()["in_flight"] == 1)  # the one worker is stuck on Label Studio
    writer.submit([(i, {"s": i}) for i in range(2, 7)])  # never waits for the stuck write
    writer.submit([(5, {"s": 50})])
    assert list(writer.pending_.items()) == [(4, {"s": 4}), (6, {"s": 6}), (5, {"s": 50})]
    assert writer.stats()["dropped"] == 2 and "dropped (the queue is full" in caplog.text
    with caplog.at_level(logging.WARNING):
        assert writer.stop() == 3
    assert "3 acquisition-score write(s) dropped (the server is stopping" in caplog.text
    assert writer.submit([(7, {"s": 7})]) == 0
    client.go.set()
    _until(lambda: writer.stats()["in_flight"] == 0)
    assert [i for i, _ in client.calls] == [1]  # nothing pending was sent after stop()


def test_no_client_yet_means_nothing_is_sent() -> None:
    writer = ScoreWriter(lambda: None, 1, workers=1)
    writer.submit([(1, {"s": 1})])
    assert writer.wait_idle(10) and writer.stats()["failed"] == 1
    writer.stop()
