"""The backend contract, over EVERY registered backend.

Each registered backend name needs a harness in ``HARNESSES`` that knows how to build it for a
test and how to make its crowd work: a backend without one FAILS here, so a new backend cannot
skip the contract. The Prolific harness runs against tests/support/prolific_server.py, a local
server written from Prolific's published API documentation (we cannot reach Prolific from
here); the file-exchange harness plays a vendor that answers the outbox into the inbox.

Adding a harness: write a class with ``backend()`` (a new, unopened backend), ``work()`` (let
the people behind it make progress; called repeatedly, also from a thread while a loop runs),
``dispatched_keys()`` (the task keys the platform holds, each once per copy it holds, or None
when the platform keeps none) and ``close()``; then add ``"name": YourHarness`` to HARNESSES.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clicloop.orchestrator.config import config_from_dict
from clicloop.orchestrator.data import load_data
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.loop import Loop
from clicloop.orchestrator.plugins import Registry, get_plugin_manager
from clicloop.orchestrator.seeding import rng_for
from clicloop.orchestrator.types import Answer, BackendContext, Task
from tests.conftest import PURPOSE, digits_config
from tests.support import prolific_server

LABELS = tuple(str(i) for i in range(10))
REGISTERED = Registry(get_plugin_manager()).names("backend")


@pytest.fixture(scope="module")
def truth() -> dict[str, str]:
    config = config_from_dict(digits_config("sqlite://"))
    pool, _, _ = load_data(config.data, config.loop.seed)
    return {i: str(t) for i, t in zip(pool.ids, pool.truth)}


# -- harnesses -----------------------------------------------------------------------------------


class SimulatedHarness:
    """The simulated crowd answers at once; it holds no copy of the tasks."""

    def __init__(self, tmp: Path, truth: dict[str, str], stack: ExitStack):
        pass

    def backend(self) -> Any:
        from clicloop.backends.simulated import SimulatedCrowd

        return SimulatedCrowd()

    def work(self) -> None:
        pass

    def dispatched_keys(self) -> list[str] | None:
        return None


class EventCrowdHarness:
    """The discrete-event crowd: its clock runs when it is collected from."""

    def __init__(self, tmp: Path, truth: dict[str, str], stack: ExitStack):
        pass

    def backend(self) -> Any:
        from clicloop.backends.des import EventCrowd

        return EventCrowd(compute_s=1.0)

    def work(self) -> None:
        pass

    def dispatched_keys(self) -> list[str] | None:
        return None


class ProlificHarness:
    """ProlificBackend against the local fake Prolific (its participant pool works as it is polled)."""

    def __init__(self, tmp: Path, truth: dict[str, str], stack: ExitStack):
        self.state = prolific_server.new_state(seed=0, truth=truth, pool=prolific_server.Pool(n=60))
        self.url = stack.enter_context(prolific_server.running(self.state))

    def backend(self) -> Any:
        from clicloop.backends.prolific import ProlificBackend

        return ProlificBackend(survey_url=f"{self.url}/survey", base_url=self.url, token=self.state.token)

    def work(self) -> None:
        pass  # the fake participant pool advances each time the backend lists submissions

    def dispatched_keys(self) -> list[str] | None:
        with self.state.lock:
            return [k for s in self.state.studies.values() for k in json.loads(s["metadata"])["task_keys"]]


class FileExchangeHarness:
    """FileExchange with a test vendor who answers every outbox row into the inbox (seeded)."""

    def __init__(self, tmp: Path, truth: dict[str, str], stack: ExitStack):
        self.dir = tmp / "exchange"
        self.truth = truth
        self.lock = threading.Lock()

    def backend(self) -> Any:
        from clicloop.backends.file_exchange import FileExchange

        return FileExchange(directory=str(self.dir), reward=0.05, fee_rate=0.1, confidential=True)

    def work(self) -> None:
        with self.lock:
            outbox, inbox = self.dir / "outbox", self.dir / "inbox"
            if not outbox.exists():
                return
            for path in sorted(outbox.glob("*.jsonl")):
                target = inbox / f"vendor-{path.name}"
                if target.exists():
                    continue
                rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
                text = "".join(json.dumps(_vendor_answer(row, self.truth)) + "\n" for row in rows)
                tmp = inbox / f".{target.name}.tmp"
                tmp.write_text(text, encoding="utf-8")
                tmp.replace(target)

    def dispatched_keys(self) -> list[str] | None:
        rows = []
        for path in sorted((self.dir / "outbox").glob("*.jsonl")):
            rows += [json.loads(line)["task_key"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return rows


def _vendor_answer(row: dict[str, Any], truth: dict[str, str]) -> dict[str, Any]:
    rng = rng_for(0, "vendor", row["task_key"])
    true = truth.get(row["item_id"], row["labels"][0])
    label = true if rng.random() < 0.9 else row["labels"][int(rng.integers(len(row["labels"])))]
    return {"task_key": row["task_key"], "worker": f"vendor-{int(rng.integers(5))}", "label": label,
            "active_s": round(float(8 * math.exp(0.3 * rng.standard_normal())), 3)}


class LabelStudioHarness:
    """LabelStudioBackend against the real local Label Studio (tests/support), with the test annotator."""

    def __init__(self, tmp: Path, truth: dict[str, str], stack: ExitStack):
        from tests.support.labelstudio_server import LabelStudioUnavailable, shared_server

        try:
            self.server = shared_server()
        except LabelStudioUnavailable as e:
            pytest.fail(str(e), pytrace=False)
        self.truth = truth
        self.project = f"contract-{tmp.name}"[:50]
        self.backends: list[Any] = []
        self.annotators: dict[int, Any] = {}

    def backend(self) -> Any:
        from clicloop.backends.labelstudio import LabelStudioBackend

        backend = LabelStudioBackend(url=self.server.url, api_key=self.server.token, project=self.project, retry_for_s=60.0)
        self.backends.append(backend)
        return backend

    def work(self) -> None:
        from tests.support.labelstudio_annotator import Annotator

        for backend in self.backends:
            pid = getattr(backend, "project_id_", None)
            if pid is not None:
                if pid not in self.annotators:
                    self.annotators[pid] = Annotator(self.server.url, self.server.token, pid, self.truth, seed=0)
                self.annotators[pid].annotate_open_tasks()

    def dispatched_keys(self) -> list[str] | None:
        return None  # tests/backends/test_labelstudio.py checks that keys are never imported twice


HARNESSES: dict[str, Callable[[Path, dict[str, str], ExitStack], Any]] = {
    "simulated": SimulatedHarness,
    "event-crowd": EventCrowdHarness,
    "prolific": ProlificHarness,
    "file-exchange": FileExchangeHarness,
    "labelstudio": LabelStudioHarness,
}


@pytest.fixture(params=REGISTERED)
def harness(request: pytest.FixtureRequest, tmp_path: Path, truth: dict[str, str]) -> Iterator[Any]:
    name = request.param
    if name not in HARNESSES:
        pytest.fail(
            f"backend {name!r} is registered but has no contract-test harness: add one to HARNESSES in "
            f"tests/backends/test_contract.py (build the backend, make its crowd work; see the module docstring)",
            pytrace=False,
        )
    with ExitStack() as stack:
        h = HARNESSES[name](tmp_path, truth, stack)
        h.name = name
        yield h


# -- the contract --------------------------------------------------------------------------------


def _context(backend: Any, truth: dict[str, str]) -> BackendContext:
    return BackendContext("contract", LABELS, PURPOSE, 0, truth if getattr(backend, "reads_ground_truth", False) else None)


def _tasks(truth: dict[str, str], n: int = 6, replicas: int = 1) -> list[Task]:
    items = sorted(truth)[:n]
    return [Task(f"contract/0/{i}/{r}", "contract", 0, i, r, PURPOSE, LABELS, payload=f"item {i}")
            for i in items for r in range(replicas)]


def _collect_all(h: Any, backend: Any, tasks: list[Task], polls: int = 200) -> list[Answer]:
    """Poll like the loop does until every task has an answer; every answer seen is returned."""
    seen: list[Answer] = []
    for _ in range(polls):
        h.work()
        seen += backend.collect(tasks)
        if {a.task_key for a in seen} >= {t.key for t in tasks}:
            return seen
    raise AssertionError(f"{h.name}: only {len({a.task_key for a in seen})} of {len(tasks)} tasks answered")


def test_every_registered_backend_has_a_harness(harness: Any) -> None:
    assert harness.name in REGISTERED


def test_dispatch_twice_means_each_task_once(harness: Any, truth: dict[str, str]) -> None:
    backend = harness.backend()
    backend.open(_context(backend, truth))
    tasks = _tasks(truth, replicas=2)
    backend.dispatch(tasks)
    backend.dispatch(tasks)
    backend.dispatch(list(reversed(tasks[:3])))
    held = harness.dispatched_keys()
    if held is not None:
        assert sorted(held) == sorted(t.key for t in tasks)
    answers = _collect_all(harness, backend, tasks)
    by_key: dict[str, set[tuple[str, str | None]]] = {}
    for a in answers:
        by_key.setdefault(a.task_key, set()).add((a.worker, a.label))
    assert set(by_key) == {t.key for t in tasks}
    assert all(len(v) == 1 for v in by_key.values()), "a task was answered twice, differently"
    backend.close()


def test_collect_returns_valid_answers_for_the_asked_tasks_only(harness: Any, truth: dict[str, str]) -> None:
    backend = harness.backend()
    backend.open(_context(backend, truth))
    tasks = _tasks(truth, n=8)
    backend.dispatch(tasks)
    _collect_all(harness, backend, tasks)
    asked = tasks[:3]
    answers = backend.collect(asked)
    assert answers and {a.task_key for a in answers} <= {t.key for t in asked}
    for a in answers:
        assert isinstance(a, Answer) and isinstance(a.worker, str) and a.worker
        assert a.label is None or a.label in LABELS
        for value in (a.active_s, a.search_s, a.wait_s, a.returned_s, a.qualification_s, a.reward, a.fee):
            assert isinstance(value, (int, float, Decimal)) and math.isfinite(value) and value >= 0  # money: a Decimal (exact) or a float
        assert isinstance(a.currency, str) and a.currency
    cost = backend.expected_cost_per_task()
    assert cost is None or (math.isfinite(cost) and cost >= 0)
    assert isinstance(backend.confidential, bool) and isinstance(backend.reads_ground_truth, bool)
    backend.close()


def test_a_loop_runs_end_to_end(harness: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    backend = harness.backend()
    floor = {"per_backend": {harness.name: {"amount": 12.02, "currency": getattr(backend, "currency", "EUR")}}}  # its pay's
    config = config_from_dict(digits_config(
        url, loop={"name": f"contract-{harness.name}", "poll_seconds": 0.01, "round_timeout_s": 60},
        backend={"name": harness.name}, stop={"max_labels": 20}, wage_floor=floor,
    ))
    stop = threading.Event()

    def crowd() -> None:
        while not stop.is_set():
            harness.work()
            stop.wait(0.01)

    worker = threading.Thread(target=crowd, daemon=True)
    worker.start()
    try:
        results = Loop(config, backend=backend).run()
    finally:
        stop.set()
        worker.join(timeout=10)
    assert sum(r.answers for r in results) == 20
    assert results[-1].stop_reason.startswith("label budget spent")
    assert results[-1].metric is not None and results[-1].metric > 0.3
    with Ledger(url) as ledger:
        assert len(ledger.labels(config.loop.name)) == 20
    assert np.all(np.diff([r.n_labeled for r in results]) >= 0)
