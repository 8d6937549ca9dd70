"""A simulated crowd: answers from the ground truth through per-worker confusion, with human
time, unpaid overhead and pay drawn from documented distributions.

It is stateless per task: an answer is a pure function of (seed, task key), so re-dispatching a
task after a crash yields the same answer, and the ledger de-duplicates it. Use it to plan
("how many hours and euros to reach 95%?") and to test the loop end to end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from clicloop.orchestrator.errors import BackendError
from clicloop.backends.params import check_money, check_number
from clicloop.orchestrator.ledger import money
from clicloop.orchestrator.seeding import rng_for
from clicloop.orchestrator.types import Answer, BackendContext, Task


@dataclass(frozen=True)
class _Worker:
    raw_id: str
    accuracy: float
    careless: bool
    qualification_s: float


class SimulatedCrowd:
    """Simulated workers with per-worker confusion, log-normal task times and unpaid overhead.

    Parameters
    ----------
    n_workers: size of the worker pool.
    accuracy_mean, accuracy_concentration: each careful worker's accuracy is drawn from a Beta
        distribution with this mean and concentration (alpha + beta); errors spread over the
        other labels with Dirichlet(1) weights per worker and true label.
    careless_fraction: share of workers who answer uniformly at random.
    seconds_median, seconds_sigma, seconds_per_char: active time per task is log-normal with
        median ``seconds_median + seconds_per_char * len(text)`` and log-sd ``seconds_sigma``.
    search_seconds_median, wait_seconds_median, overhead_sigma: unpaid time per task spent
        finding the task and waiting (log-normal).
    qualification_seconds: unpaid qualification test, once per worker.
    opt_out_rate: chance that a worker skips a task with a content warning (a paid opt-out).
        With ``exposure_cap_per_day`` in the loop's content warning, a round counts as one
        working day: no worker gets more flagged tasks in a round than the cap.
    reward, fee_rate, currency: pay per task (unless the loop prices the task: ``Task.reward``);
        the platform fee is ``fee_rate * reward`` (a share, at most 1: 0.2 for 20%).

    The replicas of an item asked in one round go to different workers (up to ``n_workers``);
    an answer asked in a later round (``loop.relabel``, ``loop.adaptive``) may go to a worker
    who answered the item before, since each answer is a pure function of its task: the event
    crowd (``event-crowd``), which keeps its state, never gives one person an item twice.
    """

    pays_task_reward = True  # pays the loop's price for a task (Task.reward) when it sets one

    confidential = False
    reads_ground_truth = True

    def __init__(
        self,
        n_workers: int = 20,
        accuracy_mean: float = 0.97,
        accuracy_concentration: float = 30.0,
        careless_fraction: float = 0.05,
        seconds_median: float = 5.0,
        seconds_sigma: float = 0.5,
        seconds_per_char: float = 0.05,
        search_seconds_median: float = 10.0,
        wait_seconds_median: float = 3.0,
        overhead_sigma: float = 0.8,
        qualification_seconds: float = 180.0,
        opt_out_rate: float = 0.1,
        reward: float | Decimal | str = 0.02,  # a money amount: also exact, or as a decimal string
        fee_rate: float = 0.2,
        currency: str = "EUR",
    ):
        self.n_workers = n_workers
        self.accuracy_mean = accuracy_mean
        self.accuracy_concentration = accuracy_concentration
        self.careless_fraction = careless_fraction
        self.seconds_median = seconds_median
        self.seconds_sigma = seconds_sigma
        self.seconds_per_char = seconds_per_char
        self.search_seconds_median = search_seconds_median
        self.wait_seconds_median = wait_seconds_median
        self.overhead_sigma = overhead_sigma
        self.qualification_seconds = qualification_seconds
        self.opt_out_rate = opt_out_rate
        self.reward = reward
        self.fee_rate = fee_rate
        self.currency = currency

    def open(self, context: BackendContext) -> None:
        self.check_params()
        if context.truth is None:
            raise BackendError("the simulated crowd needs ground truth: set data.pool.truth to the column that holds it")
        self.context_ = context
        self.label_index_ = {label: i for i, label in enumerate(context.labels)}
        rng = rng_for(context.seed, "simulated-crowd", "workers")
        k = len(context.labels)
        a = self.accuracy_mean * self.accuracy_concentration
        b = (1 - self.accuracy_mean) * self.accuracy_concentration
        careless = rng.random(self.n_workers) < self.careless_fraction
        accuracy = np.where(careless, 1.0 / k, rng.beta(a, b, self.n_workers))
        self.workers_ = [
            _Worker(f"sim-{i:04d}", float(accuracy[i]), bool(careless[i]), self.qualification_seconds)
            for i in range(self.n_workers)
        ]
        # error distribution per worker and true label (over the other labels)
        self.errors_ = rng.dirichlet(np.ones(max(k - 1, 1)), size=(self.n_workers, k))
        self.assigned_: dict[str, int] = {}  # task key -> worker, for capped (content-warning) tasks
        self.exposure_: dict[tuple[int, int], int] = {}  # (round = day, worker) -> flagged tasks

    def check_params(self) -> None:
        """Refuse params that cannot run, each error naming ``backend.params.<name>`` (the loop
        calls this before it opens the ledger, :meth:`open` again)."""
        who, share = "simulated crowd", " (a share: 0.9 for 90%)"
        check_number(who, "n_workers", self.n_workers, low=1, whole=True)
        check_number(who, "accuracy_mean", self.accuracy_mean, low=0, high=1, open_low=True, open_high=True, hint=share)
        check_number(who, "accuracy_concentration", self.accuracy_concentration, low=0, open_low=True)
        check_number(who, "opt_out_rate", self.opt_out_rate, low=0, high=1, hint=share)
        check_number(who, "careless_fraction", self.careless_fraction, low=0, high=1, hint=share)
        check_money(who, "reward", self.reward)
        check_number(who, "fee_rate", self.fee_rate, low=0, high=1, hint=" (a share of the reward: 0.2 for 20%)")

    def _reward(self, task: Task | None = None, error: type[Exception] = BackendError) -> Decimal:
        """The reward of an answer, exact: the loop's price when it set one, else ``reward``
        (``error`` naming the parameter when it is not an amount of money)."""
        if task is not None and task.reward is not None:
            return money.exact(task.reward)  # the loop's price wins
        return money.param(self.reward, "simulated crowd: backend.params.reward", error)

    def dispatch(self, tasks: Sequence[Task]) -> None:
        for task in tasks:
            if task.item_id not in self.context_.truth:
                raise BackendError(
                    f"the simulated crowd has no ground truth for item {task.item_id!r} "
                    "(is data.pool.truth filled for every pool row?)"
                )
        cap = self.context_.exposure_cap_per_day
        if cap is not None:
            for task in sorted((t for t in tasks if t.content_warning and t.key not in self.assigned_), key=lambda t: t.key):
                self.assigned_[task.key] = self._capped_worker(task, cap)

    def _order(self, task: Task) -> np.ndarray:
        """The workers in the order they would take this item (a fixed shuffle per round and item)."""
        return rng_for(self.context_.seed, "simulated-crowd", "assign", task.round_no, task.item_id).permutation(self.n_workers)

    def _capped_worker(self, task: Task, cap: int) -> int:
        """The first worker, from the task's usual place in the item's order, with flagged tasks
        left today (a round) who has not taken another replica of the item."""
        order = self._order(task)
        prefix = task.key.rsplit("/", 1)[0] + "/"
        taken = {w for key, w in self.assigned_.items() if key.startswith(prefix)}
        start = task.replica % self.n_workers
        for w in map(int, np.roll(order, -start)):
            if w not in taken and self.exposure_.get((task.round_no, w), 0) < cap:
                self.exposure_[(task.round_no, w)] = self.exposure_.get((task.round_no, w), 0) + 1
                return w
        raise BackendError(
            f"task {task.key}: every one of the {self.n_workers} simulated workers already had {cap} flagged task(s) "
            "in this round (content_warning.exposure_cap_per_day); raise backend n_workers or the cap, or lower loop.batch_size"
        )

    def collect(self, tasks: Sequence[Task]) -> list[Answer]:
        return [self._answer(task) for task in tasks]

    def expected_cost_per_task(self) -> Decimal:
        reward = self._reward(error=ValueError)  # the loop's check turns it into a ConfigError naming backend.params
        return reward + money.share(reward, self.fee_rate)

    def close(self) -> None:
        pass

    def _answer(self, task: Task) -> Answer:
        seed = self.context_.seed
        w = self.assigned_.get(task.key)
        if w is None:
            w = int(self._order(task)[task.replica % self.n_workers])
        worker = self.workers_[w]
        rng = rng_for(seed, "simulated-crowd", "answer", task.key)
        label: str | None = self._label(rng, worker, w, task)
        length = len(task.payload) if isinstance(task.payload, str) else 0
        median = self.seconds_median + self.seconds_per_char * length
        active = float(median * np.exp(self.seconds_sigma * rng.standard_normal()))
        if task.content_warning and rng_for(seed, "simulated-crowd", "opt-out", task.key).random() < self.opt_out_rate:
            label, active = None, min(active, self.seconds_median)  # read the warning, opted out: paid, no label
        search = float(self.search_seconds_median * np.exp(self.overhead_sigma * rng.standard_normal()))
        wait = float(self.wait_seconds_median * np.exp(self.overhead_sigma * rng.standard_normal()))
        reward = self._reward(task)
        return Answer(
            task_key=task.key,
            worker=worker.raw_id,
            label=label,
            active_s=round(active, 3),
            search_s=round(search, 3),
            wait_s=round(wait, 3),
            qualification_s=worker.qualification_s,
            reward=reward,
            fee=money.share(reward, self.fee_rate),
            currency=self.currency,
        )

    def _label(self, rng: np.random.Generator, worker: _Worker, w: int, task: Task) -> str:
        labels = self.context_.labels
        true = self.context_.truth[task.item_id]
        if worker.careless:
            return labels[int(rng.integers(len(labels)))]
        if rng.random() < worker.accuracy or len(labels) < 2:
            return true
        c = self.label_index_[true]
        others = [j for j in range(len(labels)) if j != c]
        return labels[others[int(rng.choice(len(others), p=self.errors_[w, c]))]]

    def __repr__(self) -> str:
        return f"SimulatedCrowd(n_workers={self.n_workers}, reward={self.reward} {self.currency})"
