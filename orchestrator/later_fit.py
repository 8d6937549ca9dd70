"""The model a round evaluates and deploys, fitted while people work on the round's tasks.

A round needs two models: the one the strategy scores the pool with (fitted on the human labels),
and the one it evaluates, pre-annotates with and deploys (with pseudo-labels, most of a round's
compute on a large pool). Only the first decides what people are sent, so the loop sends the
tasks first and fits the second while they work: people wait for the query fit and the scoring,
not for the pseudo-labeled fit. The round's metric is recorded when that fit is done, before the
round's answers are collected; on a simulated clock (``backends/des.py``) its seconds pass as
background time, beside the crowd's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from clicloop.orchestrator.training.models import evaluate

if TYPE_CHECKING:
    from clicloop.orchestrator.loop import Loop


def fit_first(loop: Loop, query: Any) -> bool:
    """Whether the round's trained model must be fitted before its tasks go out: a stopping rule
    reads its metric (``stop.target_metric``, ``plateau``, ``forecast``), or the backend shows the
    model's predictions to people (``pre_annotations``); and in a cold round there is no model."""
    stop = loop.config.stop
    return (query is None or stop.target_metric is not None or stop.plateau is not None or stop.forecast is not None
            or bool(getattr(loop.backend_, "pre_annotations", False)))


class LaterFit:
    """Round ``r``'s trained model, fitted by ``deploy()`` once (:meth:`run`), its metric recorded."""

    def __init__(self, loop: Loop, r: int, deploy: Callable[[], Any]):
        self.loop = loop
        self.r = r
        self.deploy = deploy

    def now(self) -> tuple[Any, float | None]:
        """Fit and evaluate before the round starts (its metric goes into the round's first record):
        ``(model, metric)``; :meth:`run` and :meth:`wait` then do nothing."""
        self.done_ = True
        model = self.deploy()
        return model, evaluate(model, self.loop.evalset_, self.loop.config.loop.metric)

    def run(self) -> None:
        """Fit and evaluate (once), record the metric; on a simulated clock, charge the seconds
        as background time from the simulated second the tasks went out."""
        if getattr(self, "done_", False):
            return
        loop = self.loop
        clock = _clock(loop.backend_)
        key = f"{loop.name}/{self.r}/deploy"
        start = clock.begin(key) if clock is not None else None
        started = time.perf_counter()
        metric = evaluate(self.deploy(), loop.evalset_, loop.config.loop.metric)
        if clock is not None:
            self.until_ = start + float(clock.charge(time.perf_counter() - started, key=key, start=start))
        loop.ledger_.record_metric(loop.name, self.r, metric, n_eval=loop.eval_size(), eval_digest=loop.eval_digest_)
        self.done_ = True

    def wait(self) -> None:
        """On a simulated clock: the round ends no earlier than its background fit."""
        self.run()
        until = getattr(self, "until_", None)
        clock = _clock(self.loop.backend_)
        if until is not None and clock is not None and clock.now_ < until:
            clock.collect_until([], until)


def _clock(backend: Any) -> Any:
    """The backend's simulated clock (itself), or None for a crowd in real time."""
    ok = all(callable(getattr(backend, name, None)) for name in ("begin", "charge", "collect_until"))
    return backend if ok else None
