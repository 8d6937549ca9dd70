"""``loop.mode: continuous``: people never wait for the model, the model never waits for the slowest person.

The backend's queue is kept topped up to ``loop.lookahead`` open tasks; the model refits every
``loop.refit_every`` new answers. Each refit is a round of the ledger (its model version). The
refit runs off the collect path (a worker thread): while it fits and ranks, answers keep being
recorded and the queue kept topped up from the current ranking; when it is ready, the new version
withdraws queued tasks that fell out of its ranking on backends that can withdraw (never a task
someone started) and tops the queue up from its ranking. On a simulated clock (the event crowd)
the refit's seconds are charged as concurrent time: it starts at the simulated second of the
answer that triggered it, and the answers that come before it ends are collected at their
simulated times (:meth:`ContinuousRun._window`). Every task keeps
the round of the version that chose it, and ``cont_answers`` numbers the answers as they arrive,
so an answer's staleness (answers between the version that chose its task and the answer) is
measured (after Haertel et al., 2010, "Parallel active learning: eliminating wait time with
minimal staleness"; Huang et al., IJCAI 2021, asynchronous active learning).

Resuming is derived from the ledger like the rounds mode: the open tasks are those recorded and
not answered, withdrawn or expired; the unfinished version is refitted on the same labels and
ranks the same items (those answered before it was first fitted are left out, whatever arrived
since). Which answers a version is fitted on is a function of the ledger, not of timing: the
answers before the ``refit_every``-th one recorded under the version before it (or all of them,
when that version ran out of tasks first), see :meth:`ContinuousRun._seen`. Each commit boundary can be made fatal for crash tests (``CLICLOOP_FAULT_AT`` with
``CLICLOOP_FAULT_COUNT``, see :func:`fault`).
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

from clicloop.orchestrator.crowd import quality
from clicloop.orchestrator.crowd.backend_facts import record_backend_facts
from clicloop.orchestrator.crowd.extra import record_extras
from clicloop.orchestrator.crowd.redundancy import answer_rules, screened
from clicloop.orchestrator.fairwork.policies import check_dispatch
from clicloop.orchestrator.fairwork.wages import price_per_answer
from clicloop.orchestrator.ledger import continuous as cl
from clicloop.orchestrator.continuous_hooks import BOUNDARIES, COUNT_ENV, fault, no_more_tasks, record_trailing_waits  # noqa: F401 (loop.py and the crash tests import them from here)
from clicloop.orchestrator.seeding import rng_for
from clicloop.orchestrator.ledger.money import ZERO, from_micros
from clicloop.orchestrator.stopping import Budget, costing, items_affordable, stop_reason
from clicloop.orchestrator.training.models import evaluate, predictions_for
from clicloop.orchestrator.training.threads import blas_limits
from clicloop.orchestrator.types import Model, RoundResult, Task

if TYPE_CHECKING:
    from clicloop.orchestrator.loop import Loop

log = logging.getLogger("clicloop")


@dataclass
class _Fit:
    """A version fitted and ranked, not yet in use."""

    r: int
    seen: int  # answers recorded before the ones it was fitted on ended
    labeled: dict[str, str]
    model: Model | None
    metric: float | None
    ranking: np.ndarray
    seconds: float  # fit, evaluation and ranking, as measured
    charged: float | None = None  # as the backend's simulated clock charged them
    ready_at: float | None = None  # the simulated second it was ready


class ContinuousRun:
    """Runs (or resumes) a set-up :class:`~clicloop.orchestrator.loop.Loop` in continuous mode."""

    def __init__(self, loop: Loop):
        self.loop = loop

    def versions(self) -> Iterator[RoundResult]:
        """Each model version's result as it is committed; the last one carries the stop reason."""
        loop = self.loop
        r = loop._first_round()
        self.seen_ = cl.answer_count(loop.ledger_, loop.name)  # a resume ramps from the answers so far
        self.open_ = {row["key"]: loop._task(row["round_no"], row["item_id"], row["replica"],
                                             None if row["reward_micros"] is None else from_micros(row["reward_micros"]))
                      for row in cl.open_tasks(loop.ledger_, loop.name)}
        if self.open_:  # a resume: send again what may not have reached the backend (idempotent by key)
            self._dispatch(r, list(self.open_.values()))
        threads = loop.config.loop.blas_threads  # held in the loop's thread (BLAS pools are global) and the refit's (OpenMP is per thread)
        pool = self.pool_ = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clicloop-refit")
        wait_for_fit = False  # Ctrl-C, SIGTERM, a for left early: the lease goes back now, not after the refit in
        try:  # hand (it ends in the background); an error waits for it, as the pool's with-block did
            with blas_limits(threads):
                fit: _Fit | None = self._refit(r, [], None, None)
            while fit is not None:
                with blas_limits(threads):
                    result, fit = self._version(fit)
                yield result
            wait_for_fit = True
        except Exception:
            wait_for_fit = True
            raise
        finally:
            pool.shutdown(wait=wait_for_fit, cancel_futures=not wait_for_fit)

    # -- one version ----------------------------------------------------------------------------

    def _seen(self, r: int) -> int:
        """The answers version ``r`` is fitted on (those with ``seq`` below it): as first fitted,
        when recorded; else those before the ``refit_every``-th answer recorded under version
        ``r - 1`` and that answer; else (the version before ran out of tasks) every answer."""
        loop = self.loop
        seen = cl.versions(loop.ledger_, loop.name).get(r, {}).get("answers_seen")
        if seen is None and r > 0:
            nth = cl.nth_answer_seq(loop.ledger_, loop.name, r - 1, loop.config.loop.refit_every)
            seen = None if nth is None else nth + 1
        return cl.answer_count(loop.ledger_, loop.name) if seen is None else seen

    def _fit(self, r: int, seen: int, taken: set[str], later: set[str], held: set[str] = frozenset()) -> _Fit:
        """Fit, evaluate and rank version ``r`` (in the refit thread: reads only, the ledger's
        writes stay in the loop's thread) on the labels of items not answered after ``seen``
        (``later``: a resumed version must not see labels aggregated for the next one); ``held``:
        items in someone's hands (see :meth:`_held`)."""
        loop, cfg = self.loop, self.loop.config
        started = time.perf_counter()
        with blas_limits(cfg.loop.blas_threads):
            labeled = {k: v for k, v in loop._labeled().items() if k not in later}
            model, query = loop._fit(labeled)
            metric = evaluate(model, loop.evalset_, cfg.loop.metric)
            ranking = self._rank(r, query, labeled, taken, seen, held)
        return _Fit(r, seen, labeled, model, metric, ranking, time.perf_counter() - started)

    def _refit(self, r: int, queue: list[int], reward: Decimal | None, predictions: dict[int, Any] | None) -> _Fit:
        """Start version ``r`` in the refit thread and keep collecting answers (and topping the
        queue up from ``queue``, the current ranking) until it is ready."""
        loop = self.loop
        loop.pm_.hook.clicloop_round_started(loop=loop, round_no=r)
        seen = self._seen(r)
        self._aggregate(r, before_seq=seen)  # labels for the answers it is fitted on
        before = cl.answered_items(loop.ledger_, loop.name, before_seq=seen)
        later = cl.answered_items(loop.ledger_, loop.name) - before
        begin = getattr(loop.backend_, "begin", None)
        start = begin(f"{loop.name}/{r}") if callable(begin) else None  # the simulated second it starts
        future = self.pool_.submit(self._fit, r, seen, before | set(loop.vetoed_), later, self._held())
        return self._window(r - 1, future, start, queue, reward, predictions)

    def _window(self, r: int, future: Future, start: float | None, queue: list[int], reward: Decimal | None,
                predictions: dict[int, Any] | None) -> _Fit:
        """Answers to version ``r``'s tasks while the next version is fitted. On a simulated clock
        the fit's seconds pass from ``start``: answers are collected up to ``start + seconds`` at
        their simulated times; else until the refit thread is done."""
        loop = self.loop
        if start is None:
            while not future.done():
                queue = self._top_up(r, queue, reward, predictions or {})
                if not self._receive(r, sleep=False):
                    wait([future], timeout=loop.config.loop.poll_seconds)  # the next poll, or the refit done
            return future.result()
        fit = future.result()
        fit.charged = float(loop.backend_.charge(fit.seconds, key=f"{loop.name}/{fit.r}", start=start))
        end = fit.ready_at = start + fit.charged
        while loop.backend_.now_ < end:
            queue = self._top_up(r, queue, reward, predictions or {})
            self._receive(r, until=end)
        return fit

    def _version(self, fit: _Fit) -> tuple[RoundResult, _Fit | None]:
        """Put a fitted version in use: record it, stop or withdraw and fill; the result and the next version."""
        loop, cfg, r = self.loop, self.loop.config, fit.r
        loop.ledger_.start_round(loop.name, r, loop._version(r, fit.model), len(fit.labeled), cfg.loop.metric, fit.metric,
                                 n_eval=loop.eval_size(), eval_digest=loop.eval_digest_)
        reason = self._stop_reason(r, fit.metric, fit.labeled)
        ranking = np.empty(0, dtype=np.int64) if reason else fit.ranking
        priced = cfg.wage_floor.price_rewards
        cl.record_version(loop.ledger_, loop.name, r, fit.seen, fit.charged if fit.charged is not None else fit.seconds, fit.ready_at,
                          self._price_now() if priced else None, priced)  # a resumed version keeps what it recorded
        fault("version")
        if reason is None and ranking.size == 0 and not self.open_:
            reason = "pool exhausted: every item is labeled or asked"
        if reason is not None:
            self._withdraw(r, self._stale(set()))
            self._drain(r)
            self._aggregate(r)
            return loop._finish(r, reason), None
        self.seen_ = fit.seen  # the lookahead's ramp follows the version in use
        nxt = self._fill(r, fit.model, ranking)
        if nxt is None:
            return loop._finish(r, "no answers: nobody at the backend can take the open tasks, or the budget is spent"), None
        return loop._finish(r, None), nxt

    def _stop_reason(self, r: int, metric: float | None, labeled: dict[str, str]) -> str | None:
        loop = self.loop
        history = [row for row in loop.ledger_.rounds(loop.name) if row["round_no"] < r]
        spent = self._budget(len(labeled), committed=False, before=r)  # as when version r was first put in use
        return stop_reason(loop.config.stop, r, metric, spent, history, loop._hours_between)

    def _budget(self, n_labeled: int | None = None, *, committed: bool = True, reward: Decimal | None = None,
                before: int | None = None) -> Budget:
        """What is spent; ``committed``: counting the open tasks as answers to come, each at the
        reward it offers (no new task is asked beyond the budget, and the loop stops once what it
        asked is answered); a new task costs ``reward`` and its fee (the backend's own price without one).
        ``before``: without the answers recorded while that version or a later one was in use (a
        resumed version decides its stop on the ledger as it stood then: it stopped one version
        early, the last answers of the budget in no version, when killed just after them)."""
        loop = self.loop
        spent = loop.ledger_.spent(loop.name, answered_before=before)
        left = len(loop.pool_.ids) - (n_labeled if n_labeled is not None else 0)
        cost = costing(loop.backend_)  # the backend's own price read once, not once per open task
        price = cost(reward)
        opened = sum(((cost(t.reward) or ZERO) for t in self.open_.values()), ZERO) if committed else ZERO
        n_open = len(self.open_) if committed else 0
        return Budget(int(spent["answers"]) + n_open, spent["cost"] + opened, spent["total_hours"], price, pool_left=left)

    def lookahead(self, seen: int | None = None) -> int:
        """Open tasks to keep: ``loop.lookahead``, else twice the backend's active workers (one in
        hand and one queued each, so nobody waits while the model refits), else ``batch_size``.
        With ``loop.lookahead_ramp``, the active workers plus the answers the version in use was
        fitted on (``seen``, else its own), up to twice them: early versions ask fewer ahead."""
        cfg = self.loop.config.loop
        if cfg.lookahead is not None:
            return cfg.lookahead
        active = getattr(self.loop.backend_, "active_workers", None)
        if not callable(active):
            return cfg.batch_size
        n = max(1, int(active()))
        if cfg.lookahead_ramp:
            return n + min(n, self.seen_ if seen is None else seen)
        return 2 * n

    def _held(self) -> set[str]:
        """Items of open tasks someone has started (on a backend that can withdraw: those it does
        not hold queued; else every open task, none can be taken back): their labels are coming
        whatever the next version ranks, so it ranks around them, not them. Only for a strategy
        that takes them as pending (``pending`` true: ``margin-coverage``); else none."""
        backend = self.loop.backend_
        if not getattr(self.loop.strategy_, "pending", False):  # a strategy that cannot cover around them: they compete
            return set()
        queued = backend.queued() if getattr(backend, "can_withdraw", False) else set()
        return {task.item_id for k, task in self.open_.items() if k not in queued}

    def _reserve(self, r: int, seen: int) -> int:
        """Items a ranking holds beyond ``lookahead + refit_every``: the answers expected while the
        next version is fitted, twice over (the queue is topped up from this ranking meanwhile,
        and a slow refit would otherwise run it dry: people wait): the slowest earlier version's
        compute seconds times the answer rate before answer ``seen``, at least ``refit_every`` (a
        refit slower than every one before must not empty the queue at once), at most twice the
        lookahead. A function of the ledger, so a resumed version ranks the same items; 0 for the
        first (no answer rate yet)."""
        loop = self.loop
        earlier = [v for n, v in cl.versions(loop.ledger_, loop.name).items() if n < r]
        rate = cl.answer_rate(loop.ledger_, loop.name, seen) if earlier else None
        if rate is None:
            return 0
        slowest = max(float(v["compute_s"] or 0.0) for v in earlier)
        expected = max(math.ceil(2.0 * rate * slowest), loop.config.loop.refit_every)
        return min(expected, 2 * self.lookahead(seen))

    def _rank(self, r: int, query: Model | None, labeled: dict[str, str], taken: set[str], seen: int,
              held: set[str] = frozenset()) -> np.ndarray:
        """The items this version wants asked, best first: ``lookahead + refit_every`` (and the
        :meth:`_reserve`) of those
        neither labeled nor in ``taken`` (answered when the version was first fitted, or vetoed)
        nor ``held`` (in someone's hands: given to the strategy as pending); queued tasks compete."""
        loop = self.loop
        taken = set(labeled) | taken
        pending = np.flatnonzero(np.isin(loop.pool_.ids, np.array(sorted(held - taken), dtype=object)))
        taken |= held
        free = ~np.isin(loop.pool_.ids, np.array(sorted(taken), dtype=object))
        if not loop.confidential_:
            free &= ~loop.sensitive_  # sensitive items never go to an open crowd
        candidates = np.flatnonzero(free)
        k = min(candidates.size, self.lookahead(seen) + loop.config.loop.refit_every + self._reserve(r, seen))
        if k == 0:
            return candidates
        return np.asarray(loop._select(r, query, candidates, k, pending), dtype=np.int64)

    # -- the queue -------------------------------------------------------------------------------

    def _stale(self, keep: set[str]) -> list[str]:
        """Queued tasks whose item is not in ``keep`` (on backends that can withdraw; else none)."""
        backend = self.loop.backend_
        if not getattr(backend, "can_withdraw", False):
            return []
        queued = backend.queued()
        return [k for k, task in self.open_.items() if k in queued and task.item_id not in keep]

    def _withdraw(self, r: int, drop: list[str]) -> None:
        """Take back the queued tasks ``drop`` (those someone started meanwhile stay)."""
        if not drop:
            return
        taken = self.loop.backend_.withdraw(drop)
        self.loop.ledger_.set_task_status(taken, "withdrawn")
        for k in taken:
            del self.open_[k]
        log.debug("version %d: withdrew %d queued task(s) that fell out of the ranking", r, len(taken))
        fault("withdrawn")

    def _fill(self, r: int, model: Model | None, ranking: np.ndarray) -> _Fit | None:
        """Top the queue up from ``ranking`` and record answers until ``refit_every`` new ones came
        (or nothing is left to ask), then refit in the background as answers go on coming; the next
        version, or None when this one got no answer and has nothing open."""
        loop, cfg = self.loop, self.loop.config
        reward = self._price(r) if cfg.wage_floor.price_rewards else None
        predictions = predictions_for(model, loop.pool_.X, ranking)
        asked = {task.item_id for task in self.open_.values()} | cl.answered_items(loop.ledger_, loop.name)
        queue = [int(i) for i in ranking if loop.pool_.ids[i] not in asked]
        new = cl.answer_count(loop.ledger_, loop.name, answered_round=r)
        stale = self._stale({loop.pool_.ids[i] for i in ranking})
        # replacements go in before the stale tasks come out: the queue never runs short meanwhile
        queue = self._top_up(r, queue, reward, predictions, leaving=len(stale))
        self._withdraw(r, stale)
        queue = self._top_up(r, queue, reward, predictions)  # what the budget held back for the stale ones
        while new < cfg.loop.refit_every and self.open_:  # none open: nothing to ask until the next version
            new += self._receive(r)
            queue = self._top_up(r, queue, reward, predictions)  # also after the last answer: the refit starts with a full queue
        if new == 0 and not self.open_:
            return None
        return self._refit(r + 1, queue, reward, predictions)

    def _price_now(self) -> Decimal | None:
        """The reward per answer that pays the floor, from the ledger as it stands, toward
        ``stop.max_labels`` as in rounds mode (wage_floor.price_rewards)."""
        loop, cfg = self.loop, self.loop.config
        return price_per_answer(loop.ledger_, loop.name, cfg.backend.name, cfg.wage_floor, cfg.stop.max_labels)

    def _price(self, r: int) -> Decimal | None:
        """Version ``r``'s reward per answer: as it recorded it when put in use (a resume offers
        what the version offered before the crash: it priced from the ledger as it stood at the
        resume before 2026-12-06), else (a ledger from before migration 0011) priced now."""
        recorded, price = cl.version_price(self.loop.ledger_, self.loop.name, r)
        return price if recorded else self._price_now()

    def _top_up(self, r: int, queue: list[int], reward: Decimal | None, predictions: dict[int, Any],
                leaving: int = 0) -> list[int]:
        loop, cfg = self.loop, self.loop.config
        want = self.lookahead() - len(self.open_) + leaving
        n, _ = items_affordable(cfg.stop, max(want, 0), 1, self._budget(reward=reward))
        if want > 0 and n <= 0:
            no_more_tasks(loop)  # the budget is fully asked: people need not wait for more
        if n <= 0 or not queue:
            return queue
        take, queue = queue[:n], queue[n:]
        tasks = loop._police(r, [loop._task(r, loop.pool_.ids[i], 0, reward, predictions.get(i)) for i in take])
        if tasks:
            loop.ledger_.record_tasks(tasks, cfg.backend.name, first_rank=len(loop.ledger_.tasks(loop.name, r)))
            fault("tasks")
            self.open_.update((t.key, t) for t in tasks)
            self._dispatch(r, tasks)
        return queue

    def _dispatch(self, r: int, tasks: Sequence[Task]) -> None:
        loop = self.loop
        loop.lease_.check()
        check_dispatch(tasks, loop.config.backend.name, loop.confidential_)
        loop.backend_.dispatch(loop.ids_.tasks(tasks))
        loop.ledger_.set_task_status((t.key for t in tasks), "dispatched")
        fault("dispatched")
        loop.pm_.hook.clicloop_tasks_dispatched(loop=loop, round_no=r, tasks=list(tasks))

    def _receive(self, r: int, *, until: float | None = None, sleep: bool = True) -> int:
        """Wait for answers to the open tasks and record them: on a simulated clock until the next
        one (or ``until``), else one poll (then, when none came and ``sleep``, ``loop.poll_seconds``
        of sleep). The answers recorded."""
        loop = self.loop
        loop.lease_.check()
        tasks = list(self.open_.values())
        given = loop.ids_.tasks(tasks)
        if until is not None:
            answers = loop.backend_.collect_until(given, until)
        else:
            nxt = getattr(loop.backend_, "collect_next", None)
            answers = nxt(given) if callable(nxt) else loop.backend_.collect(given)
        answers = loop.ids_.answers(answers)
        record_extras(loop.ledger_, loop.name, loop.config.backend.name, loop.labels_, answers, loop._received,
                      **answer_rules(loop.backend_, loop.ledger_, loop.name))  # more people answered a task: paid
        record_backend_facts(loop, r)  # work that brought no answer (returned, timed out), the batches put out
        created = [x for x in answers if x.event == "created" and x.task_key in self.open_]
        if not created:
            simulated = until is not None or callable(getattr(loop.backend_, "collect_next", None))
            if not simulated and sleep:
                time.sleep(loop.config.loop.poll_seconds)
            elif until is None and not any(self._live(t) for t in tasks):
                self.open_.clear()  # the backend can answer none of them (a crowd with nobody left)
            return 0
        return self._record(r, created)

    def _live(self, task: Task) -> bool:
        live = getattr(self.loop.backend_, "live", None)
        return bool(live(task.key)) if callable(live) else True

    def _record(self, r: int, created: list[Any]) -> int:
        loop = self.loop
        rules = answer_rules(loop.backend_, loop.ledger_, loop.name, created)
        rows = [screened(self.open_[x.task_key], x, loop.labels_, **rules) for x in created]
        keys = [(row[0].key, row[0].round_no) for row in rows]
        new = loop.ledger_.record_answers(loop.name, loop.config.backend.name, rows, then=cl.order_writer(loop.name, r, keys))
        fault("answers")
        for x in created:
            self.open_.pop(x.task_key, None)
        for i in new:
            loop._received(rows[i][1], rows[i][2])
        return len(new)

    def _drain(self, r: int) -> None:
        """Before stopping: record the answers to tasks people started (they are paid for), up to
        ``loop.round_timeout_s`` on real backends; what stays unanswered expires."""
        timeout = self.loop.config.loop.round_timeout_s
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.open_:
            self._receive(r)
            if deadline is not None and time.monotonic() > deadline:
                self.loop.ledger_.set_task_status(list(self.open_), "expired")
                self.open_.clear()

    def _aggregate(self, r: int, before_seq: int | None = None) -> None:
        """Labels for every answered item without one (those answered before answer ``before_seq``)."""
        loop = self.loop
        items = sorted(cl.answered_items(loop.ledger_, loop.name, before_seq) - set(loop.ledger_.labels(loop.name)))
        quality.aggregate_items(loop.ledger_, loop.aggregator_, loop.name, r, items, rng_for(loop.config.loop.seed, "aggregate", r),
                                labels=loop.labels_)
        fault("aggregated")
