"""A test "annotator": a thread that labels the open tasks of a Label Studio project through the
official SDK (``annotations.create`` with a ``lead_time``), as a person in the UI would.

It answers from a truth table (clicloop item id -> label), skips the items it is told to skip,
draws each lead time from a seeded generator, and records what it did so tests can compare the
ledger with it. Label Studio being down is tolerated (it waits and tries again).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Annotation:
    task_id: int
    annotation_id: int
    key: str
    label: str | None
    lead_time: float


@dataclass
class Annotator:
    url: str
    api_key: str
    project_id: int
    truth: Mapping[str, str]
    seed: int = 0
    skip: frozenset[str] = frozenset()
    leave: frozenset[str] = frozenset()
    poll_s: float = 0.2
    done: list[Annotation] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        from label_studio_sdk import LabelStudio

        self.client_ = LabelStudio(base_url=self.url, api_key=self.api_key, timeout=10)
        self.rng_ = np.random.default_rng(self.seed)
        self.stop_ = threading.Event()
        self.paused_ = threading.Event()
        self.lock_ = threading.Lock()

    def annotate_open_tasks(self) -> int:
        """Annotate every task of the project without an annotation (except the task keys in
        ``leave``; items in ``skip`` are skipped); returns how many."""
        n = 0
        for task in self.client_.tasks.list(project=self.project_id, fields="all"):
            if task.total_annotations or task.cancelled_annotations:
                continue
            key = str(task.data.get("clicloop_key", ""))
            item = str(task.data.get("clicloop_item", ""))
            if key in self.leave:
                continue
            lead = float(np.round(self.rng_.lognormal(np.log(6.0), 0.4), 3))
            if item in self.skip:
                created = self.client_.annotations.create(id=task.id, result=[], was_cancelled=True, lead_time=lead)
                label = None
            else:
                label = self.truth[item]
                result = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]
                created = self.client_.annotations.create(id=task.id, result=result, lead_time=lead)
            with self.lock_:
                self.done.append(Annotation(task.id, created.id, key, label, lead))
            n += 1
        return n

    def _run(self) -> None:
        import httpx

        while not self.stop_.is_set():
            if not self.paused_.is_set():
                try:
                    self.annotate_open_tasks()
                except (httpx.HTTPError, OSError) as e:  # the server is restarting: wait
                    self.errors.append(f"{type(e).__name__}: {e}")
                except Exception as e:  # noqa: BLE001 - SDK ApiError (5xx while restarting): keep going
                    self.errors.append(f"{type(e).__name__}: {e}")
            self.stop_.wait(self.poll_s)

    def start(self) -> Annotator:
        self.thread_ = threading.Thread(target=self._run, name="ls-annotator", daemon=True)
        self.thread_.start()
        return self

    def stop(self) -> None:
        self.stop_.set()
        self.thread_.join(timeout=30)
