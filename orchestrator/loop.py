"""The loop: fit -> score -> select -> dispatch -> (evaluate) -> collect -> aggregate -> record.

The strategy scores with the fit on human labels; the model the round evaluates and deploys (with
pseudo-labels) is fitted while people work on the round's tasks (``orchestrator/later_fit.py``).

Every fact is committed to the ledger before the loop acts on it, and every write is idempotent,
so a killed run resumes where it stopped: no answer lost, no task sent or paid twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import replace
from decimal import Decimal
from typing import Any

import numpy as np

from clicloop.orchestrator.config import Config
from clicloop.orchestrator.data import EvalSet, Pool, load_data
from clicloop.orchestrator.fairwork.wages import price_per_answer, strict_floor_pause
from clicloop.orchestrator.fairwork.policies import OpaqueIds, apply_policies, check_dispatch, sensitive_mask, warning_mask
from clicloop.orchestrator.crowd import planning, quality
from clicloop.orchestrator.crowd.late import record_late, settle_changes
from clicloop.orchestrator.crowd.redundancy import answer_rules, screened
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger.money import ZERO, from_micros
from clicloop.orchestrator.loop_setup import (check_aggregator, check_eval_set, check_floor_currency, check_ledger_items, check_model,
                                              check_money_budget, check_protocols, check_strategy, check_truth, eval_digest,
                                              fingerprint, make_engine, plugin_manager_for, warn_cold_resume,
                                              warn_inert_relabel)
from clicloop.orchestrator.crowd.backend_facts import record_backend_facts
from clicloop.orchestrator.crowd.extra import record_extras
from clicloop.orchestrator.ledger.extra import KIND as EXTRA
from clicloop.orchestrator.later_fit import LaterFit, fit_first
from clicloop.orchestrator.training.models import confidence_weights
from clicloop.orchestrator.plugins import Registry, check_names
from clicloop.orchestrator.runner import RunnerLease
from clicloop.orchestrator.seeding import rng_for
from clicloop.orchestrator.selection import select_items
from clicloop.orchestrator.training.semisup import PseudoLabeler, fit_in_two, resolve_pseudo_labels, state_name
from clicloop.orchestrator.training.sentence_model import auto_model, embed_data
from clicloop.orchestrator.training.threads import blas_limits
from clicloop.orchestrator.training.warmstate import query_fits
from clicloop.orchestrator.stopping import Budget, cost_at, costing, items_affordable, per_task, stop_reason
from clicloop.orchestrator.types import Answer, BackendContext, Model, RoundResult, Task

log = logging.getLogger("clicloop")


class Loop:
    """An active-learning loop over one pool, one backend and one ledger.

    ``Loop(config).run()`` runs (or resumes) the loop the config describes and returns every
    round; ``for result in Loop(config).rounds(): ...`` yields each round as it is committed.
    Objects given here
    (``pool``, ``evalset``, ``model``, ``strategy``, ``backend``) replace what the config names.
    """

    def __init__(
        self,
        config: Config,
        *,
        pool: Pool | None = None,
        evalset: EvalSet | None = None,
        model: Any = None,
        strategy: Any = None,
        backend: Any = None,
        plugin_manager: Any = None,
    ):
        self.config = config
        self.pool = pool
        self.evalset = evalset
        self.model = model
        self.strategy = strategy
        self.backend = backend
        self.plugin_manager = plugin_manager

    @property
    def name(self) -> str:
        return self.config.loop.name

    # -- run -------------------------------------------------------------------------------------

    def run(self, *, restart: bool = False) -> list[RoundResult]:
        """Run or resume the loop until a stopping rule holds; returns every round's result."""
        for _ in self.rounds(restart=restart):
            pass
        return self.results_

    def rounds(self, *, restart: bool = False) -> Iterator[RoundResult]:
        """Run or resume the loop, yielding each round's result as soon as it is committed (rounds
        an earlier run finished are in ``results_``, not yielded again). Leaving the ``for``
        early stops the loop cleanly; a later run resumes it."""
        with ExitStack() as opened:  # closed in reverse however the run ends: backend, lease, ledger, engine
            self._setup(restart, opened)
            if self.config.loop.mode == "continuous":  # orchestrator/continuous.py: each refit is a round
                from clicloop.orchestrator.continuous import ContinuousRun

                yield from ContinuousRun(self).versions()
                return
            round_no = self._first_round()
            while True:
                with blas_limits(self.config.loop.blas_threads):
                    result = self._round(round_no)
                yield result
                if result.stop_reason is not None:
                    return
                round_no += 1

    def _setup(self, restart: bool, opened: ExitStack) -> None:
        """Build and check everything before the ledger learns of the run (a refused run registers
        nothing and buys nothing), take the loop's runner lease, open the backend, register."""
        cfg = self._build()
        if self.engine_ is not None:
            opened.callback(self.engine_.close)
        self.ledger_ = Ledger(cfg.ledger, salt=cfg.worker_salt).open()
        opened.callback(self.ledger_.close)
        self.lease_ = RunnerLease(self.ledger_, self.name).acquire()  # one runner per loop, before --restart deletes
        opened.callback(self.lease_.release)
        config_hash, config_json = fingerprint(cfg)
        accept = {fingerprint(cfg, legacy=True)[0]}  # a loop begun before data paths counted as written
        if not restart:  # refuse another config, or a pool that lost asked items, before the backend opens (it may create projects)
            self.ledger_.begin_loop(self.name, config_hash, config_json, cfg.loop.seed, register=False, accept=accept)
            check_ledger_items(self.ledger_, self.name, self.pool_, self.index_,
                               row_numbered=cfg.data.pool is not None and cfg.data.pool.id is None)
            check_eval_set(self.ledger_, self.name, self.evalset_, self.eval_digest_)
        truth = None
        if getattr(self.backend_, "reads_ground_truth", False):
            check_truth(cfg, self.pool_)
            if self.pool_.truth is not None:
                truth = {i: t for i, t in zip(self.pool_.ids, self.pool_.truth) if t is not None}
        warning = cfg.loop.content_warning
        self.confidential_ = bool(getattr(self.backend_, "confidential", False))
        self.ids_ = OpaqueIds(self.ledger_.secret_key(), cfg.loop.sensitive, self.confidential_)  # personal ids never leave as such
        self.backend_.open(BackendContext(self.name, self.labels_, cfg.loop.purpose, cfg.loop.seed, self.ids_.truth(truth),
                                          exposure_cap_per_day=warning.exposure_cap_per_day if warning else None, restart=restart,
                                          mode=cfg.loop.mode))
        opened.callback(self.backend_.close)
        if restart:
            self.ledger_.delete_loop(self.name)
        self.ledger_.begin_loop(self.name, config_hash, config_json, cfg.loop.seed, accept=accept)
        texts = self.pool_.texts
        self.sensitive_ = sensitive_mask(texts, self.pool_.sensitive, cfg.loop.sensitive, len(self.pool_))
        self.warned_ = warning_mask(texts, self.pool_.disturbing, warning, len(self.pool_))
        self.known_ = dict(self.pool_.seed_labels) if cfg.loop.gold is not None else {}  # gold: the known answers
        self.results_: list[RoundResult] = []
        self.vetoed_: set[str] = set()  # items a policy kept from this backend (not offered again in this run)

    def _build(self) -> Config:
        """Load the data and build the parts, checking each (no side effect); the config as run."""
        cfg = self.config
        self.pm_ = plugin_manager_for(cfg, self.plugin_manager)
        self.registry_ = Registry(self.pm_)
        check_names(cfg, self.registry_)
        pool, evalset, self.labels_ = load_data(cfg.data, cfg.loop.seed)
        self.pool_ = self.pool or pool
        self.evalset_ = self.evalset if self.evalset is not None else evalset
        self.eval_digest_ = eval_digest(self.evalset_)  # as given: a text set before it is embedded
        self.index_ = {item_id: i for i, item_id in enumerate(self.pool_.ids)}
        self.model_name_, why = auto_model(self.pool_.kind) if cfg.model.name == "auto" else (cfg.model.name, "the config's model.name")
        log.info("model: %s (%s)", self.model_name_, why)
        self.registry_.get("model", self.model_name_, field="model.name")
        self.strategy_ = self.strategy or self.registry_.create("strategy", cfg.strategy.name, cfg.strategy.params, field="strategy")
        self.backend_ = self.backend or self.registry_.create("backend", cfg.backend.name, cfg.backend.params, field="backend")
        self.aggregator_ = self.registry_.create("aggregator", cfg.aggregator.name, cfg.aggregator.params, field="aggregator")
        model = self.model if self.model is not None else self.registry_.create("model", self.model_name_, cfg.model.params, field="model")
        check_protocols(cfg, model, self.backend_, (self.model is not None, self.backend is not None))
        check_strategy(cfg, self.strategy_, model, None)  # what the model offers, before minutes of embedding
        self.pool_, self.evalset_ = embed_data(model, self.pool_, self.evalset_)  # a text pool, embedded once: numeric from here on
        if self.model is None:
            check_model(cfg, model, self.pool_.X, self.labels_)
        check_aggregator(cfg, self.aggregator_, self.labels_)
        warn_inert_relabel(cfg)
        check_strategy(cfg, self.strategy_, model, self.pool_.X)
        spread = resolve_pseudo_labels(cfg.loop.pseudo_labels, self.pool_.kind, len(self.pool_),
                                       self.pool_.X.shape[1] if self.pool_.X.ndim == 2 else 0, len(self.labels_))
        if spread is not cfg.loop.pseudo_labels:  # "auto", resolved: the ledger records what runs
            cfg = cfg.model_copy(update={"loop": cfg.loop.model_copy(update={"pseudo_labels": spread})})
        self.pseudo_ = None if spread is None else PseudoLabeler(spread.share, spread.neighbors, spread.alpha,
                                                                 agree=spread.agree, check_folds=spread.check_folds,
                                                                 newest_check=spread.newest_check,
                                                                 graph=spread.graph, max_rows=spread.max_rows,
                                                                 fit_tol=spread.fit_tol, fit_C=spread.fit_C,
                                                                 state=state_name(cfg.ledger, cfg.loop.name))
        self.warm_ = None if self.model is not None else query_fits(state_name(cfg.ledger, cfg.loop.name))
        check_money_budget(cfg, self.backend_)
        check_floor_currency(cfg, self.backend_)
        self.engine_ = make_engine(cfg, self.strategy_)
        if self.pseudo_ is not None:
            self.pseudo_.engine = self.engine_  # the ray engine also searches the neighbour graph
        return cfg

    def _first_round(self) -> int:
        rounds = self.ledger_.rounds(self.name)
        for row in rounds[:-1]:
            self.results_.append(self._result(row))
        if not rounds:
            for state in (self.warm_, self.pseudo_):  # nothing saved by an earlier run of this name may seed it
                if state is not None:
                    state.start_over()
            return 0
        warn_cold_resume(self.name, self.warm_, len(rounds))
        last = rounds[-1]
        if last["status"] == "finished" and last["stop_reason"] is None:  # done: the next round starts
            self.results_.append(self._result(last))
            return last["round_no"] + 1
        return last["round_no"]  # unfinished, or stopped (a resume with new stop rules re-decides it)

    # -- one round -------------------------------------------------------------------------------

    def _round(self, r: int) -> RoundResult:
        self.pm_.hook.clicloop_round_started(loop=self, round_no=r)
        started = time.perf_counter()
        labeled = self._labeled()
        query, deploy = self._fit_query(labeled)
        later = LaterFit(self, r, deploy)  # the model to evaluate and deploy: fitted once the tasks are out, unless
        model, metric = later.now() if fit_first(self, query) else (None, None)  # a stop rule or a pre-annotation needs it
        self.ledger_.start_round(self.name, r, self._version(r, query), len(labeled), self.config.loop.metric, metric,
                                 n_eval=self.eval_size(), eval_digest=self.eval_digest_)
        tasks = self._recorded_tasks(r)
        if not tasks:
            reason, tasks = self._plan(r, metric, query if model is None else model, query, labeled)
            if reason is not None:
                later.run()
                return self._finish(r, reason)
        charge = getattr(self.backend_, "charge", None)  # a simulated clock (backends/des.py): the loop's compute time passes
        if callable(charge):
            charge(time.perf_counter() - started, key=f"{self.name}/{r}")
        while tasks:  # adaptive redundancy: more answers while they disagree
            self._dispatch(r, tasks)
            self._tell_if_last(r)
            later.run()  # people are at work on the tasks: the model to evaluate and deploy is fitted now
            self._collect(r, tasks)
            tasks = planning.more_answers(self, r)
        later.wait()
        if self.config.loop.gold is not None:
            quality.judge_gold(self.ledger_, self.name, self.known_, self.config.loop.gold)
        items = sorted({row["item_id"] for row in self.ledger_.tasks(self.name, r) if row["kind"] != "gold"})
        quality.aggregate_items(self.ledger_, self.aggregator_, self.name, r, items, rng_for(self.config.loop.seed, "aggregate", r),
                                labels=self.labels_, gold=list(self.known_))
        return self._finish(r, None)

    def _labeled(self) -> dict[str, str]:
        labeled = dict(self.pool_.seed_labels)
        labeled.update(self.ledger_.labels(self.name))
        return labeled

    def _fit(self, labeled: dict[str, str]) -> tuple[Model | None, Model | None]:
        """``(trained, query)``: the model to evaluate and deploy, the one the strategy scores with."""
        query, deploy = self._fit_query(labeled)
        return deploy(), query

    def _fit_query(self, labeled: dict[str, str]) -> tuple[Model | None, Callable[[], Model | None]]:
        """``(query, deploy)``: the model the strategy scores with, fitted now, and the function
        that fits the model to evaluate and deploy (the pseudo-labeled fit, when there is one)."""
        if len(set(labeled.values())) < 2:
            return None, lambda: None  # cold start: nothing to learn from yet
        idx = np.fromiter((self.index_[i] for i in sorted(labeled, key=self.index_.__getitem__)), dtype=np.int64)
        y = np.array([labeled[self.pool_.ids[i]] for i in idx], dtype=object).astype(str)
        model = self.model if self.model is not None else self.registry_.create("model", self.model_name_, self.config.model.params, field="model")
        weights = confidence_weights(self.ledger_.label_confidence(self.name), self.pool_.ids[idx], model) \
            if self.config.loop.weight_by_confidence else {}
        def fit(start: Any) -> tuple[Model | None, Callable[[], Model | None]]:
            return fit_in_two(start, self.pseudo_, self.pool_.X, idx, y, weights)  # pseudo-labels: never stored

        return fit(model) if self.warm_ is None else self.warm_.around(model, idx, y, fit)  # a given instance: as it is

    def eval_size(self) -> int | None:
        """Items in the evaluation set (the sampling error of each round's metric); None without one."""
        return None if self.evalset_ is None else len(self.evalset_.y)

    def _version(self, r: int, model: Model | None) -> str:
        return f"{self.name}-r{r}" if model is not None else f"{self.name}-r{r}-cold"

    def _recorded_tasks(self, r: int) -> list[Task]:
        return [
            self._task(r, row["item_id"], row["replica"], None if row["reward_micros"] is None else from_micros(row["reward_micros"]),
                       kind=row["kind"])
            for row in self.ledger_.tasks(self.name, r) if row["kind"] != EXTRA  # an extra answer's task is never sent
        ]

    def _task(self, r: int, item_id: str, replica: int, reward: Decimal | None = None,
              prediction: tuple[str, float] | None = None, kind: str = "label") -> Task:
        i = self.index_[item_id]
        warning = self.config.loop.content_warning
        return Task(
            key=f"{self.name}/{r}/{item_id}/{replica}", loop=self.name, round_no=r, item_id=item_id,
            replica=replica, purpose=self.config.loop.purpose, labels=self.labels_, kind=kind,
            payload=self.pool_.payload(i), reward=reward, prediction=prediction if kind != "gold" else None,
            sensitive=bool(self.sensitive_[i]), content_warning=warning.text if warning and self.warned_[i] else None,
        )

    def _plan(self, r: int, metric: float | None, model: Model | None, query: Model | None,
              labeled: dict[str, str]) -> tuple[str | None, list[Task]]:
        """Decide whether to stop; otherwise select this round's items (scored by ``query``) and
        record their tasks (pre-annotated by ``model``)."""
        cfg = self.config
        reward = (price_per_answer(self.ledger_, self.name, cfg.backend.name, cfg.wage_floor, cfg.stop.max_labels)
                  if cfg.wage_floor.price_rewards else None)
        spent = replace(self._budget(r), pool_left=len(self.pool_.ids) - len(labeled),
                        cost_per_task=cost_at(self.backend_, reward))  # the money budget at the price offered
        history = [row for row in self.ledger_.rounds(self.name) if row["round_no"] < r]
        reason = stop_reason(cfg.stop, r, metric, spent, history, self._hours_between)
        if reason is not None:
            return reason, []
        n, reason = items_affordable(cfg.stop, cfg.loop.batch_size, cfg.loop.redundancy, spent)
        if reason is None:
            reason = strict_floor_pause(self.ledger_, self.name, cfg.wage_floor, cfg.backend.name)
        if reason is not None:
            return reason, []
        candidates, reason = planning.open_candidates(self, labeled)
        if reason is not None:
            return reason, []
        gold = planning.gold_items(self, r, n)
        relabel = planning.relabel_candidates(self) if model is not None else {}
        chosen = planning.choose(self, r, query, candidates, relabel, n - len(gold))
        tasks = self._police(r, planning.round_tasks(self, r, chosen, gold, relabel, reward, model))
        self.ledger_.record_tasks(tasks, cfg.backend.name)
        return None, tasks

    def _police(self, r: int, tasks: list[Task]) -> list[Task]:
        """Fair-work policies (the ``clicloop_task_policy`` hook) veto or reprice tasks before they exist."""
        kept, vetoed = apply_policies(self.pm_.hook, self, self.config.backend.name, self.confidential_, tasks)
        for key, reason in vetoed.items():
            log.warning("round %d: task %s vetoed by a policy: %s", r, key, reason)
        self.vetoed_ |= {t.item_id for t in tasks if t.key in vetoed}
        return kept

    def _select(self, r: int, model: Model | None, candidates: np.ndarray, n: int,
                pending: np.ndarray | None = None) -> np.ndarray:
        """Round ``r``'s ``n`` picks among ``candidates`` (:func:`~clicloop.orchestrator.selection.select_items`)."""
        return select_items(self, r, model, candidates, n, pending)

    def _budget(self, r: int) -> Budget:
        spent = self.ledger_.spent(self.name, rounds=(0, r - 1))
        return Budget(spent["answers"], spent["cost"], spent["total_hours"], per_task(self.backend_))

    def _tell_if_last(self, r: int) -> None:
        """With round ``r``'s tasks the budget is fully asked: tell the backend no more work is coming."""
        spent, rows = self._budget(r), self.ledger_.tasks(self.name, r)
        offered = [None if t["reward_micros"] is None else from_micros(t["reward_micros"]) for t in rows]
        cost = costing(self.backend_)
        costs = [cost(reward) or ZERO for reward in offered]  # each task at the reward it offers
        after = replace(spent, answers=spent.answers + len(rows), cost=spent.cost + sum(costs, ZERO),
                        cost_per_task=max(costs, default=spent.cost_per_task))
        if items_affordable(self.config.stop, 1, 1, after)[0] == 0:
            from clicloop.orchestrator.continuous import no_more_tasks

            no_more_tasks(self)

    def _hours_between(self, first: int, last: int) -> float:
        return self.ledger_.spent(self.name, rounds=(first, last))["total_hours"]

    def _dispatch(self, r: int, tasks: Sequence[Task]) -> None:
        self.lease_.check()
        check_dispatch(tasks, self.config.backend.name, self.confidential_)
        self.backend_.dispatch(self.ids_.tasks(tasks))  # idempotent by task key: safe to repeat after a crash
        self.ledger_.set_task_status((t.key for t in tasks), "dispatched")
        self.pm_.hook.clicloop_tasks_dispatched(loop=self, round_no=r, tasks=list(tasks))

    def _collect(self, r: int, tasks: Sequence[Task]) -> None:
        """Collect until every task is answered or expired. What is pending is read back from the
        ledger at each poll (dispatched, no answer yet), whoever recorded the answers."""
        by_key = {t.key: t for t in tasks}
        pending = self.ledger_.pending(self.name, r) & by_key.keys()
        deadline = None if self.config.loop.round_timeout_s is None else time.monotonic() + self.config.loop.round_timeout_s
        while pending:
            self.lease_.check()
            answers = self.ids_.answers(self.backend_.collect(self.ids_.tasks([t for t in tasks if t.key in pending])))
            quality.apply_corrections(self.ledger_, self.aggregator_, self.name, r, [a for a in answers if a.event in ("updated", "deleted")],
                                      self.labels_, rng_for(self.config.loop.seed, "correct", r))
            created = [a for a in answers if a.event == "created"]
            rules = answer_rules(self.backend_, self.ledger_, self.name, answers)
            rows = [screened(by_key[a.task_key], a, self.labels_, **rules) for a in created if a.task_key in pending]
            stray = record_late(self, r, [a for a in created if a.task_key not in by_key], rules)
            if stray:
                log.warning("round %d: backend returned answers for unknown tasks %s; ignored", r, stray[:3])
            new = self.ledger_.record_answers(self.name, self.config.backend.name, rows)
            for i in new:
                self._received(rows[i][1], rows[i][2])
            record_extras(self.ledger_, self.name, self.config.backend.name, self.labels_, answers, self._received, **rules)
            record_backend_facts(self, r)  # work that brought no answer (returned, timed out), the batches put out
            pending = self.ledger_.pending(self.name, r) & by_key.keys()
            if pending:
                if deadline is not None and time.monotonic() > deadline:
                    log.warning("round %d: %d task(s) unanswered after %ss; they expire", r, len(pending), self.config.loop.round_timeout_s)
                    self.ledger_.set_task_status(pending, "expired")
                    return
                time.sleep(self.config.loop.poll_seconds)

    def _received(self, answer: Answer, status: str) -> None:
        self.pm_.hook.clicloop_annotation_received(loop=self, answer=answer, status=status)

    def _finish(self, r: int, reason: str | None) -> RoundResult:
        if reason is not None:  # the loop stops: what people did since the last poll; each worker's last waiting, once
            from clicloop.orchestrator.continuous import record_trailing_waits

            settle_changes(self, r)
            record_trailing_waits(self, r)
        self.ledger_.finish_round(self.name, r, reason)
        row = next(row for row in self.ledger_.rounds(self.name) if row["round_no"] == r)
        result = self._result(row)
        self.results_.append(result)
        self.pm_.hook.clicloop_round_finished(loop=self, result=result)
        return result

    def _result(self, row: dict[str, Any]) -> RoundResult:
        spent = self.ledger_.spent(self.name, rounds=(row["round_no"], row["round_no"]))
        return RoundResult(
            self.name, row["round_no"], row["model_version"], row["n_labeled"], row["metric"], spent["answers"],
            spent["cost"] - spent["adjustments"], spent["active_hours"], spent["total_hours"], row["stop_reason"],  # planned cost
        )

