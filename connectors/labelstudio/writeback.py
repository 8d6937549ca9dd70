"""Acquisition-score write-backs to Label Studio, off the request path.

``/predict`` hands each task's new score to a :class:`ScoreWriter` and answers at once. The
writer keeps a bounded queue with one entry per task (a newer score replaces a pending older
one), worked through by ``workers`` daemon threads, one PATCH per task (Label Studio has no bulk
update). A full queue drops its oldest entry with a log line (the next prediction of that task
writes it again). :meth:`ScoreWriter.stop` drops what is pending, with a log line, and never
waits for a PATCH in flight, so a shutdown takes seconds whatever Label Studio does. Nothing here
touches the ledger: what it holds stays.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from clicloop.orchestrator.errors import ClicloopError

log = logging.getLogger("clicloop.labelstudio.ml")

#: Task data updates the writer holds at most (older ones are dropped first).
MAX_PENDING = 10_000
_FULL = "the queue is full"


class ScoreWriter:
    """Writes ``(task id, data)`` updates through ``client()`` (the project's current Label Studio
    client, or None while it has none) in ``workers`` background threads."""

    def __init__(self, client: Callable[[], Any], project_id: int, workers: int = 4, max_pending: int = MAX_PENDING):
        self.client = client
        self.project_id = project_id
        self.workers = workers
        self.max_pending = max_pending
        self.cond_ = threading.Condition()
        self.pending_: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self.threads_: list[threading.Thread] = []
        self.stopping_ = False
        self.counts_ = {"written": 0, "failed": 0, "dropped": 0, "in_flight": 0}

    def submit(self, updates: Sequence[tuple[int, dict[str, Any]]]) -> int:
        """Queue the updates (never blocks on Label Studio); returns how many were queued."""
        with self.cond_:
            if self.stopping_:
                return 0
            for task_id, data in updates:
                self.pending_.pop(task_id, None)
                self.pending_[task_id] = data
            while len(self.pending_) > self.max_pending:
                self.pending_.popitem(last=False)
                self._count_dropped(1, _FULL)
            while self.pending_ and len(self.threads_) < self.workers:
                thread = threading.Thread(target=self._work, name=f"ls-acq-{self.project_id}-{len(self.threads_)}", daemon=True)
                self.threads_.append(thread)
                thread.start()
            self.cond_.notify_all()
        return len(updates)

    def _count_dropped(self, n: int, why: str) -> None:
        """Count dropped writes (under ``cond_``); log the first, every 1000th, and a shutdown's."""
        first = self.counts_["dropped"] == 0
        self.counts_["dropped"] += n
        if first or why != _FULL or self.counts_["dropped"] % 1000 == 0:
            log.warning("project %s: %d acquisition-score write(s) dropped (%s; %d so far); the next predictions "
                        "write them again", self.project_id, n, why, self.counts_["dropped"])

    def _work(self) -> None:
        while True:
            with self.cond_:
                while not self.pending_ and not self.stopping_:
                    self.cond_.wait()
                if self.stopping_:
                    return
                task_id, data = self.pending_.popitem(last=False)
                self.counts_["in_flight"] += 1
            outcome = "failed"
            try:
                client = self.client()
                if client is not None:
                    client.update_task(task_id, data=data)
                    outcome = "written"
            except ClicloopError as e:
                log.warning("project %s: acquisition score of task %s not written (%s); the next predictions write it",
                            self.project_id, task_id, e)
            except Exception:  # noqa: BLE001 - a failed write is logged; the writer must outlive it
                log.exception("project %s: acquisition score of task %s not written", self.project_id, task_id)
            finally:
                with self.cond_:
                    self.counts_["in_flight"] -= 1
                    self.counts_[outcome] += 1
                    self.cond_.notify_all()

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Block until nothing is pending or in flight (True), or ``timeout_s`` passed (False)."""
        with self.cond_:
            return self.cond_.wait_for(lambda: not self.pending_ and not self.counts_["in_flight"], timeout_s)

    def stats(self) -> dict[str, int]:
        """Writes done, failed and dropped, and how many are pending or in flight now."""
        with self.cond_:
            return {**self.counts_, "pending": len(self.pending_)}

    def stop(self) -> int:
        """Stop the workers without waiting for Label Studio; returns how many pending writes were
        dropped (a PATCH in flight ends with the process)."""
        with self.cond_:
            if self.stopping_:
                return 0
            self.stopping_ = True
            dropped = len(self.pending_)
            self.pending_.clear()
            if dropped:
                self._count_dropped(dropped, "the server is stopping")
            self.cond_.notify_all()
        return dropped


def score_updates(tasks: list[dict[str, Any]], scores: list[float | None], version: str) -> list[tuple[int, dict[str, Any]]]:
    """``(task id, new data)`` for each task with a score (None: deferred, no prediction yet) whose
    data do not hold that score and model ``version`` yet."""
    todo = []
    for task, score in zip(tasks, scores):
        if score is None:
            continue
        value, data = round(float(score), 6), task.get("data") or {}
        if data.get("clicloop_acquisition") != value or data.get("clicloop_model_version") != version:
            todo.append((int(task["id"]), {**data, "clicloop_acquisition": value, "clicloop_model_version": version}))
    return todo


def write_now(client: Callable[[], Any], project_id: int, updates: Sequence[tuple[int, dict[str, Any]]], workers: int) -> int:
    """Write the updates over ``workers`` connections at once and wait until they are written (a
    failure is logged, not raised); returns how many were sent."""
    writer = ScoreWriter(client, project_id, workers)
    writer.submit(updates)
    writer.wait_idle()
    writer.stop()
    return len(updates)
