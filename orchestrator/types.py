"""Contracts shared by the loop and every plugin: tasks, answers, and the protocols a model,
strategy, backend and aggregator satisfy.

Nothing here imports anything heavy; plugins depend on this module, never the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

TASK_KINDS = ("label", "review")
ANSWER_EVENTS = ("created", "updated", "deleted")


@dataclass(frozen=True)
class Task:
    """A request for one human judgment on one item.

    ``key`` is the idempotency key (loop, round, item, replica): a backend that receives the
    same key twice must treat it as one task.
    """

    key: str
    loop: str
    round_no: int
    item_id: str
    replica: int
    purpose: str
    labels: tuple[str, ...]
    payload: Any = None
    kind: str = "label"
    sensitive: bool = False
    reward: Decimal | None = None  # offered per answer (exact, in the backend's currency), when the loop prices tasks (wage_floor.price_rewards)
    prediction: tuple[str, float] | None = None  # the model's (label, confidence): a pre-annotation, or what a review checks
    content_warning: str | None = None  # shown before the item; the worker may opt out (skip) without penalty


@dataclass(frozen=True)
class PolicyDecision:
    """A fair-work policy's verdict on one task (see the ``clicloop_task_policy`` hook):
    ``veto`` keeps it from the backend, ``reprice`` offers ``reward`` instead. ``reason`` is
    required and logged."""

    task_key: str
    action: Literal["veto", "reprice"]
    reason: str
    reward: Decimal | float | None = None  # read exactly (a float by its repr), to the micro-unit


@dataclass(frozen=True)
class Answer:
    """One worker's answer to one task, as a backend reports it.

    ``worker`` is the platform's raw id: the ledger stores only its keyed pseudonym.
    ``label`` is None when the worker skipped the task (effort without a label).
    Seconds are human time: ``active_s`` on the task, the rest unpaid overhead (``search_s``
    finding it, ``wait_s`` waiting, ``returned_s`` on work returned unfinished).
    ``qualification_s`` is the worker's one-off qualification time: the ledger records it once
    per worker and backend, however many answers repeat it. Money is in ``currency`` units.
    ``accepted_at`` / ``submitted_at`` are the platform's epoch seconds, when it reports them.

    Corrections: a backend reports a changed or deleted answer with the same ``task_key``,
    ``event="updated"`` or ``"deleted"`` and a ``version`` (e.g. the platform's updated-at) that
    makes the correction idempotent; ``external_id`` is the platform's id of the answer. Another
    person's answer to a task that already has its answer is ``event="extra"`` (the loop records
    and pays it as an answer of its own: :mod:`clicloop.orchestrator.crowd.extra`).

    ``problem``: the backend's reason to quarantine the answer (e.g. an implausible time, see
    :mod:`clicloop.orchestrator.crowd.plausibility`); the ledger records it with that reason.
    """

    task_key: str
    worker: str
    label: str | None
    active_s: float
    reward: Decimal | float  # exact Decimal from clicloop's backends; a float (read by its repr) from others
    fee: Decimal | float
    currency: str
    search_s: float = 0.0
    wait_s: float = 0.0
    returned_s: float = 0.0
    qualification_s: float = 0.0
    accepted_at: float | None = None
    submitted_at: float | None = None
    external_id: str | None = None
    event: str = "created"
    version: str = ""
    problem: str | None = None


@dataclass(frozen=True)
class UnpaidWork:
    """Time a person spent on work that brought no answer and no pay, as a backend reports it
    (``unpaid_work()``, optional): a submission returned or timed out on Prolific. ``key`` is the
    platform's id of that work (the ledger records it once), ``worker`` the platform's raw id,
    ``kind`` e.g. ``"returned"`` or ``"timed-out"``, ``task_keys`` the tasks it was for."""

    key: str
    worker: str
    seconds: float
    kind: str
    task_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class PublishedBatch:
    """A batch a backend put out (``published_batches()``, optional): a Prolific study. ``key``
    is the backend's batch id, ``places`` how many people can take it, ``sizing`` the rule that
    sized it and what it read (e.g. the measured answer rate), None when the batch is a round's."""

    key: str
    task_keys: tuple[str, ...]
    places: int
    external_id: str | None = None
    sizing: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class BackendContext:
    """What a backend is told when a loop opens it.

    ``truth`` is the ground truth, given only to backends whose class sets
    ``reads_ground_truth = True`` (the simulated crowd); every other backend gets None.
    """

    loop: str
    labels: tuple[str, ...]
    purpose: str
    seed: int
    truth: Mapping[str, str] | None = None
    payloads: Mapping[str, Any] = field(default_factory=dict)
    exposure_cap_per_day: int | None = None  # flagged (content-warning) tasks per worker and day, for backends that pick workers
    restart: bool = False  # the loop starts over (`clicloop run --restart`): state a backend kept for it is stale
    mode: str = "rounds"  # loop.mode: `continuous` asks for tasks a few at a time (backends may gather or withdraw them)


@runtime_checkable
class Model(Protocol):
    """Anything with ``fit``, ``predict_proba`` and ``classes_`` is a model (scikit-learn style)."""

    classes_: np.ndarray

    def fit(self, X: Any, y: Any) -> Any: ...

    def predict_proba(self, X: Any) -> np.ndarray: ...


@runtime_checkable
class Strategy(Protocol):
    """A query strategy: a pure, vectorised score, higher = more informative.

    ``requires`` names the model methods the score needs (checked when the config loads).
    ``score`` must not keep state between calls; randomness only from ``rng``.
    """

    requires: tuple[str, ...]

    def score(self, model: Model | None, X: Any, rng: np.random.Generator) -> np.ndarray: ...


@runtime_checkable
class Backend(Protocol):
    """A crowd backend: sends tasks to people and brings their answers back.

    ``dispatch`` is idempotent by ``Task.key``. ``collect`` returns the answers available now
    for the given tasks (it may repeat earlier answers: the ledger de-duplicates them).
    ``expected_cost_per_task`` (reward + fee, an exact Decimal) lets the loop respect a money
    budget; None if unknown (a float from a third-party backend is still accepted, read by its repr). ``confidential`` backends (in-house people) may receive sensitive items.

    Optional: ``unpaid_work()`` (:class:`UnpaidWork` seen so far) and ``published_batches()``
    (:class:`PublishedBatch` put out so far); the loop records both in the ledger after each
    collect, once each (:mod:`clicloop.orchestrator.crowd.backend_facts`). Optional attributes:
    ``currency`` (what it pays in; an answer in another is quarantined, unpaid) and
    ``max_active_s`` (the plausibility limit on an answer's active seconds, default 8 h);
    ``reports_changes`` (True: ``collect([])`` reports extra answers and corrections to any of the
    loop's tasks; the loop polls so once when it stops). Optional method: ``check_params()``,
    raising a BackendParamError (``field``: ``backend.params.<name>``) for a value that cannot
    run; the loop calls it before it opens the ledger.
    """

    confidential: bool
    reads_ground_truth: bool

    def open(self, context: BackendContext) -> None: ...

    def dispatch(self, tasks: Sequence[Task]) -> None: ...

    def collect(self, tasks: Sequence[Task]) -> list[Answer]: ...

    def expected_cost_per_task(self) -> Decimal | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Vote:
    """One valid answer as an aggregator sees it."""

    item_id: str
    worker: str
    label: str


@dataclass(frozen=True)
class Consensus:
    """An aggregated label for one item with its confidence in [0, 1]."""

    item_id: str
    label: str
    confidence: float
    n_answers: int


@runtime_checkable
class Aggregator(Protocol):
    """Turns several answers per item into one label per item."""

    def aggregate(self, votes: Sequence[Vote], rng: np.random.Generator) -> list[Consensus]: ...


@dataclass(frozen=True)
class RoundResult:
    """One round as recorded: the model it fitted, its metric, and what the round bought."""

    loop: str
    round_no: int
    model_version: str
    n_labeled: int
    metric: float | None
    answers: int
    cost: Decimal  # planned cost (rewards, bonuses, fees; back-pay apart), exact, in the loop's currency
    active_hours: float
    total_hours: float
    stop_reason: str | None
