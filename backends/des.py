"""A discrete-event simulated crowd: workers who arrive and leave, answer on a simulated clock,
and wait (unpaid) when the requester has nothing for them.

Hours of labeling run in seconds: nothing sleeps; the clock jumps from event to event (a worker
finishes a task, arrives, leaves). The loop charges its own compute time (fit and scoring) to the
clock with :meth:`EventCrowd.charge`, so a slow refit shows as simulated time in which the workers
go on with the queue, or wait when it is empty.

Waiting is a measured fact here: while a worker is present and the queue is empty, their waiting
time runs; it is reported on their next answer as ``wait_s`` (unpaid time the requester caused),
so the ledger's wage views count it.

Every draw is a pure function of (seed, what is drawn): a worker's speed and error rate, the
time and label of one task for one worker, the length of one session or absence. Events at the
same instant are taken in a fixed order, so the same seed, the same tasks and the same charges
give the same answers at the same simulated times. With ``state_path`` the crowd saves its state
after every call (atomically) and takes it up again on ``open``, so a killed loop resumes with
the crowd it left: answers finished before the kill are handed over, none is made twice.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import numpy as np

from clicloop.orchestrator.errors import BackendError
from clicloop.backends.params import check_money, check_number
from clicloop.orchestrator.ledger import money
from clicloop.orchestrator.seeding import rng_for
from clicloop.backends.des_state import STATE_VERSION, _State, _Worker, load_state, save_state  # noqa: F401 (pickles name them here)
from clicloop.backends.des_waiting import Waiting
from clicloop.orchestrator.types import Answer, BackendContext, Task

log = logging.getLogger("clicloop")


class EventCrowd(Waiting):
    """N simulated workers on a simulated clock (see the module text).

    Parameters
    ----------
    n_workers: workers in the crowd.
    answer_median_s, answer_sigma: each answer takes a log-normal time with the worker's median
        and log-sd ``answer_sigma``; worker medians spread log-normally (log-sd ``speed_spread``)
        around ``answer_median_s``.
    error_rate, error_concentration: each worker's error rate is Beta-distributed with this mean
        and concentration; a wrong answer is uniform over the other labels.
    session_mean_s, absence_mean_s: with ``session_mean_s`` set, workers come and go: sessions
        and absences last exponential times with these means (a worker finishes the task in hand
        before leaving). None: every worker stays the whole time.
    present_share: share of workers present at the start (the others arrive after an absence).
    reward, fee_rate, currency: pay per answer (the loop's price wins when it sets one).
    compute_s: simulated seconds charged per loop computation (fit and scoring); None charges
        the measured time (realistic, not reproducible to the bit). A number makes runs
        reproducible.
    state_path: where to keep the crowd's state between runs (None: in memory only). A loop that
        starts over (``clicloop run --restart``) removes it and gets a fresh crowd.
    epoch0: the epoch second the simulated clock starts at (answers' ``accepted_at`` and
        ``submitted_at``).
    """

    pays_task_reward = True  # pays the loop's price for a task (Task.reward) when it sets one

    confidential = False
    reads_ground_truth = True
    can_withdraw = True

    def __init__(self, n_workers: int = 20, answer_median_s: float = 15.0, answer_sigma: float = 0.5,
                 speed_spread: float = 0.3, error_rate: float = 0.05, error_concentration: float = 40.0,
                 session_mean_s: float | None = None, absence_mean_s: float = 600.0, present_share: float = 1.0,
                 reward: float | Decimal | str = 0.05, fee_rate: float = 0.2, currency: str = "EUR", compute_s: float | None = None,
                 state_path: str | None = None, epoch0: float = 1_800_000_000.0):
        self.n_workers = n_workers
        self.answer_median_s = answer_median_s
        self.answer_sigma = answer_sigma
        self.speed_spread = speed_spread
        self.error_rate = error_rate
        self.error_concentration = error_concentration
        self.session_mean_s = session_mean_s
        self.absence_mean_s = absence_mean_s
        self.present_share = present_share
        self.reward = reward
        self.fee_rate = fee_rate
        self.currency = currency
        self.compute_s = compute_s
        self.state_path = state_path
        self.epoch0 = epoch0

    # -- the backend protocol --------------------------------------------------------------------

    def open(self, context: BackendContext) -> None:
        self.check_params()
        if context.truth is None:
            raise BackendError("the event crowd needs ground truth: set data.pool.truth to the column that holds it")
        self.context_ = context
        self.state_ = self._load(context) or self._fresh(context)
        self.did_: dict[int, set[str]] | None = None  # items each worker answered or holds, built from the state once

    def dispatch(self, tasks: Sequence[Task]) -> None:
        """Queue the tasks (first come, first served); a known key is ignored, a withdrawn one
        is queued again (a resumed loop re-sends what it believes open)."""
        st = self.state_
        if any(task.key not in st.tasks or task.key in st.withdrawn for task in tasks):
            self._reopen()
        for task in tasks:
            if task.item_id not in self.context_.truth:
                raise BackendError(f"the event crowd has no ground truth for item {task.item_id!r} "
                                   "(is data.pool.truth filled for every pool row?)")
            if task.key in st.tasks and task.key not in st.withdrawn:
                continue
            st.withdrawn.discard(task.key)
            st.tasks[task.key] = (task.item_id, task.reward)
            heapq.heappush(st.queue, (st.seq, task.key))
            st.queued.add(task.key)
            st.seq += 1
        self._assign_idle()
        self._save()

    def collect(self, tasks: Sequence[Task]) -> list[Answer]:
        """Run the clock until every given task is answered (or nothing more can happen); the
        answers of the given tasks."""
        keys = [t.key for t in tasks]
        self._run(lambda: all(k in self.state_.done for k in keys if self.live(k)))
        return self._answers(keys)

    def collect_next(self, tasks: Sequence[Task]) -> list[Answer]:
        """Run the clock until one of the given tasks is answered (none, when one already is: the
        caller gives the tasks it has no answer for); the answers of the given tasks."""
        keys = [t.key for t in tasks]
        self._run(lambda: any(k in self.state_.done for k in keys) or not any(self.live(k) for k in keys))
        return self._answers(keys)

    def withdraw(self, keys: Sequence[str]) -> list[str]:
        """Take queued tasks back; a task a worker has started is never withdrawn. The keys taken back."""
        st = self.state_
        out = [k for k in keys if k in st.queued]
        for k in out:
            st.queued.discard(k)
            st.withdrawn.add(k)
        st.queue = [(s, k) for s, k in st.queue if k in st.queued]
        heapq.heapify(st.queue)
        self._save()
        return out

    def queued(self) -> set[str]:
        """Keys dispatched and not started by anyone (what :meth:`withdraw` can take back)."""
        return set(self.state_.queued)

    def charge(self, seconds: float, key: str, *, start: float | None = None) -> float:
        """Let ``seconds`` of the loop's compute pass on the clock (once per ``key``: a resumed
        loop that refits again is not charged twice, and is told the seconds charged the first
        time). ``compute_s`` replaces the measured seconds when set. The seconds charged.

        ``start``: the computation ran in the background from that simulated second (see
        :meth:`begin`): nothing is run here; the loop collects answers up to ``start + seconds``
        with :meth:`collect_until` (people go on answering while the model refits)."""
        st = self.state_
        done = self._charges()
        if key in st.charged:
            return done.get(key, 0.0)
        seconds = float(self.compute_s if self.compute_s is not None else seconds)
        st.charged.add(key)
        st.charged_s += seconds
        done[key] = seconds
        if start is None:
            end = st.now + seconds
            self._run(lambda: False, until=end, save=False)  # the charge, its events and the clock saved as one
            st.now = end
        self._save()
        return seconds

    def begin(self, key: str) -> float:
        """The simulated second a background computation ``key`` started: now, the first time
        (a resumed loop asking again is told the same second)."""
        st = self.state_
        begun = getattr(st, "begun", None)
        if begun is None:  # a state saved before background refits
            begun = st.begun = {}
        if key not in begun:
            begun[key] = st.now
            self._save()
        return begun[key]

    def collect_until(self, tasks: Sequence[Task], until: float) -> list[Answer]:
        """Run the clock until one of the given tasks is answered or the clock reaches ``until``
        (then it stands at ``until``); the answers of the given tasks."""
        st = self.state_
        keys = [t.key for t in tasks]
        self._run(lambda: any(k in st.done for k in keys), until=until)
        if not any(k in st.done for k in keys):
            st.now = max(st.now, until)
            self._save()
        return self._answers(keys)

    def _charges(self) -> dict[str, float]:
        st = self.state_
        found = getattr(st, "charges", None)
        if found is None:  # a state saved before the seconds were kept per key
            found = st.charges = {}
        return found

    def active_workers(self) -> int:
        """Workers present now."""
        return sum(w.present for w in self.state_.workers)

    @property
    def now_(self) -> float:
        """Simulated seconds since the crowd opened."""
        return self.state_.now

    def expected_cost_per_task(self) -> Decimal:
        reward = self._reward(None, ValueError)  # the loop's check turns it into a ConfigError naming backend.params
        return reward + money.share(reward, self.fee_rate)

    def _reward(self, priced: Any, error: type[Exception] = BackendError) -> Decimal:
        """An answer's reward, exact: the loop's price for the task when it set one (a saved state
        from an earlier clicloop may hold it as a float), else ``reward``."""
        if priced is not None:
            return money.exact(priced)
        return money.param(self.reward, "event crowd: backend.params.reward", error)

    def close(self) -> None:
        pass

    # -- the clock -------------------------------------------------------------------------------

    def live(self, key: str) -> bool:
        """Whether the task can still be answered: someone is on it, or it is queued and someone is
        there or will come."""
        st = self.state_
        if any(w.task == key for w in st.workers):
            return True
        return key in st.queued and any(w.present or w.toggle_at < float("inf") for w in st.workers)

    def _run(self, done: Any, until: float = float("inf"), save: bool = True) -> None:
        """Take events in time order until ``done()`` holds, no event is left or the next is after
        ``until``; then save the state (unless ``save`` is False: the caller saves it with more)."""
        st = self.state_
        while not done():
            w, at = self._next_event()
            if w is None or at > until:
                break
            st.now = max(st.now, at)
            worker = st.workers[w]
            if worker.task is not None and worker.busy_until <= at:
                self._finish(w)
            elif getattr(st, "closed", False) and not worker.present and not st.queue:  # no work: they stay away
                self._send_home(worker)
            else:
                self._toggle(w)
            self._assign_idle()
        if save:
            self._save()

    def _next_event(self) -> tuple[int | None, float]:
        best, at = None, float("inf")
        for i, w in enumerate(self.state_.workers):  # ties: the lower worker first, finishing before toggling
            t = w.busy_until if w.task is not None else w.toggle_at
            if t < at:
                best, at = i, t
        return best, at

    def _finish(self, w: int) -> None:
        st, worker = self.state_, self.state_.workers[w]
        key = worker.task
        item, reward = st.tasks[key]
        started = worker.busy_until - self._seconds(w, key)
        rng = rng_for(st.seed, "event-crowd", "label", key, w)
        truth, labels = self.context_.truth[item], self.context_.labels
        label = truth
        if len(labels) > 1 and rng.random() < worker.error_rate:
            others = [x for x in labels if x != truth]
            label = others[int(rng.integers(len(others)))]
        pay = self._reward(reward)
        st.done[key] = Answer(task_key=key, worker=f"des-{w:04d}", label=label, active_s=round(worker.busy_until - started, 3),
                              wait_s=round(worker.waited_s, 3), reward=pay, fee=money.share(pay, self.fee_rate),
                              currency=self.currency, accepted_at=self.epoch0 + started, submitted_at=self.epoch0 + worker.busy_until)
        worker.task, worker.waited_s = None, 0.0
        if getattr(st, "closed", False) and not st.queue:  # no more work is coming: they leave
            worker.idle_since = st.now
            self._send_home(worker)
        elif worker.toggle_at <= st.now:  # their session ended while they worked: they leave now
            self._toggle(w)
        else:
            worker.idle_since = st.now

    def _toggle(self, w: int) -> None:
        st, worker = self.state_, self.state_.workers[w]
        if worker.present and worker.idle_since is not None:
            worker.waited_s += st.now - worker.idle_since
        worker.present = not worker.present
        worker.idle_since = st.now if worker.present else None
        worker.toggles += 1
        worker.toggle_at = st.now + self._span(w, worker.toggles, worker.present)

    def _assign_idle(self) -> None:
        st = self.state_
        for w, worker in enumerate(st.workers):
            if not st.queue:
                return
            if worker.present and worker.task is None:
                did = self._items_by_worker()
                key = self._pop_for(w, did)
                if key is None:  # every queued task is of an item they answered: someone else takes it
                    continue
                did.setdefault(w, set()).add(st.tasks[key][0])
                st.queued.discard(key)
                worker.waited_s += st.now - (worker.idle_since if worker.idle_since is not None else st.now)
                worker.task, worker.idle_since = key, None
                worker.busy_until = st.now + self._seconds(w, key)

    def _items_by_worker(self) -> dict[int, set[str]]:
        """The items each worker answered or holds (nobody answers one item twice): built from the
        state once (a resumed crowd), then kept as tasks are taken."""
        if self.did_ is None:
            st, self.did_ = self.state_, {}
            for key, answer in st.done.items():
                self.did_.setdefault(int(answer.worker[len("des-"):]), set()).add(st.tasks[key][0])
            for w, worker in enumerate(st.workers):
                if worker.task is not None:
                    self.did_.setdefault(w, set()).add(st.tasks[worker.task][0])
        return self.did_

    def _pop_for(self, w: int, did: dict[int, set[str]]) -> str | None:
        """The first queued task worker ``w`` may take: one of an item they have not answered,
        unless every worker who is or will be there has (then anyone may: a replica never waits
        forever on people who never come)."""
        st, skipped, found = self.state_, [], None
        mine = did.get(w, set())
        reachable = [i for i, x in enumerate(st.workers) if x.present or x.toggle_at < float("inf")]
        while st.queue:
            entry = heapq.heappop(st.queue)
            item = st.tasks[entry[1]][0]
            if item not in mine or all(item in did.get(i, ()) for i in reachable):
                found = entry[1]
                break
            skipped.append(entry)
        for entry in skipped:
            heapq.heappush(st.queue, entry)
        return found

    def _seconds(self, w: int, key: str) -> float:
        z = rng_for(self.state_.seed, "event-crowd", "seconds", key, w).standard_normal()
        return round(float(self.state_.workers[w].speed_s * np.exp(self.answer_sigma * z)), 3)

    def _span(self, w: int, n: int, present: bool) -> float:
        if self.session_mean_s is None:
            return float("inf")
        mean = self.session_mean_s if present else self.absence_mean_s
        return float(rng_for(self.state_.seed, "event-crowd", "span", w, n).exponential(mean))

    def _answers(self, keys: Sequence[str]) -> list[Answer]:
        return [self.state_.done[k] for k in keys if k in self.state_.done]

    # -- state -----------------------------------------------------------------------------------

    def _fresh(self, context: BackendContext) -> _State:
        st = _State(context.loop, context.seed)
        rng = rng_for(context.seed, "event-crowd", "workers")
        speed = self.answer_median_s * np.exp(self.speed_spread * rng.standard_normal(self.n_workers))
        m, c = self.error_rate, self.error_concentration
        errors = rng.beta(max(m * c, 1e-9), max((1 - m) * c, 1e-9), self.n_workers) if m > 0 else np.zeros(self.n_workers)
        present = rng.random(self.n_workers) < self.present_share
        self.state_ = st
        for w in range(self.n_workers):
            st.workers.append(_Worker(float(speed[w]), float(errors[w]), bool(present[w]), idle_since=0.0 if present[w] else None))
            st.workers[w].toggle_at = self._span(w, 0, bool(present[w]))
        return st

    def _load(self, context: BackendContext) -> _State | None:
        return load_state(self.state_path, context)

    def _save(self) -> None:
        save_state(self.state_path, self.state_)

    def check_params(self) -> None:
        """Refuse params that cannot run, each error naming ``backend.params.<name>`` (the loop
        calls this before it opens the ledger, :meth:`open` again)."""
        who, share = "event crowd", " (a share: 0.1 for 10%)"
        check_number(who, "n_workers", self.n_workers, low=1, whole=True)
        check_number(who, "answer_median_s", self.answer_median_s, low=0, open_low=True)
        check_number(who, "answer_sigma", self.answer_sigma, low=0)
        check_number(who, "speed_spread", self.speed_spread, low=0)
        check_number(who, "error_rate", self.error_rate, low=0, high=1, open_high=True, hint=share)
        if self.session_mean_s is not None:
            check_number(who, "session_mean_s", self.session_mean_s, low=0, open_low=True)
            check_number(who, "absence_mean_s", self.absence_mean_s, low=0, open_low=True)
        check_number(who, "present_share", self.present_share, low=0, high=1, hint=share)
        check_money(who, "reward", self.reward)
        check_number(who, "fee_rate", self.fee_rate, low=0, high=1, hint=" (a share of the reward: 0.2 for 20%)")
        if self.compute_s is not None:
            check_number(who, "compute_s", self.compute_s, low=0)

    def __repr__(self) -> str:
        return f"EventCrowd(n_workers={self.n_workers}, answer_median_s={self.answer_median_s})"
