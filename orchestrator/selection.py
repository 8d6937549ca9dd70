"""A round's picks: the strategy (or, in a cold round, pool coverage) over the open candidates,
on the local engine or the Ray engine, with the round's own seeded generator."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from clicloop.orchestrator.errors import StrategyError
from clicloop.orchestrator.loop_setup import cold_start_reason
from clicloop.orchestrator.seeding import rng_for
from clicloop.orchestrator.types import Model

if TYPE_CHECKING:
    from clicloop.orchestrator.loop import Loop

log = logging.getLogger("clicloop")


def select_items(loop: Loop, r: int, model: Model | None, candidates: np.ndarray, n: int,
                 pending: np.ndarray | None = None) -> np.ndarray:
    """``n`` rows of ``loop``'s pool among ``candidates``, best first, for round ``r``: by the
    loop's strategy scoring with ``model``, or by coverage (random on a text pool) in a cold
    round (``loop.cold_start_labels``); ``pending``: rows in people's hands (continuous mode).
    A strategy's failure is a :class:`StrategyError` naming the strategy and the round."""
    from clicloop.strategies.cost import ledger_seconds
    from clicloop.strategies.diversity import ColdStart
    from clicloop.strategies.scores import RandomSampling, is_numeric
    from clicloop.strategies.select import SelectContext, select

    cfg, X = loop.config, loop.pool_.X
    strategy = loop.strategy_
    labeled = np.setdiff1d(np.arange(len(loop.pool_)), candidates)
    why = cold_start_reason(cfg.loop.cold_start_labels, r, labeled.size, model is not None, is_numeric(X),
                            n_classes=len(getattr(model, "classes_", ())), continuous=cfg.loop.mode == "continuous")
    if why is not None and set(getattr(strategy, "requires", ())) - {"features"}:
        strategy = ColdStart() if is_numeric(X) else RandomSampling()
        log.info("round %d: cold start (%s); selecting with %r", r, why, strategy)
    context = SelectContext(labeled=labeled, seconds=lambda: ledger_seconds(loop.ledger_, loop.name),
                            pending=np.empty(0, dtype=np.int64) if pending is None else pending)
    rng = rng_for(cfg.loop.seed, "select", r)
    try:
        if loop.engine_ is not None and not callable(getattr(strategy, "select", None)):
            return loop.engine_.top_k(strategy, model, X, n, rng, exclude=labeled, chunk_size=cfg.loop.chunk_size)
        return select(strategy, model, X, candidates, n, rng, chunk_size=cfg.loop.chunk_size, ids=loop.pool_.ids,
                      context=context, threads=cfg.loop.engine.threads)
    except (ValueError, TypeError) as e:
        raise StrategyError(f"strategy {cfg.strategy.name!r} failed in round {r}: {e}") from e
