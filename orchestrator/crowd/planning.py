"""What the crowd-quality options add to a round's plan (:class:`~clicloop.orchestrator.loop.Loop`):
gold items (``loop.gold``), doubtful labels that compete with new items for another answer
(``loop.relabel``), and adaptive redundancy's extra replicas (``loop.adaptive``).

Each function reads the loop's config, pool and ledger; what they plan is derived from the ledger,
so a resumed round plans the same.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np

from clicloop.orchestrator.crowd import quality
from clicloop.orchestrator.crowd.redundancy import doubtful_items
from clicloop.orchestrator.ledger.money import from_micros
from clicloop.orchestrator.seeding import rng_for
from clicloop.orchestrator.stopping import items_affordable
from clicloop.orchestrator.training.models import predictions_for
from clicloop.orchestrator.types import Model, Task

if TYPE_CHECKING:
    from clicloop.orchestrator.loop import Loop


def open_candidates(loop: Loop, labeled: Iterable[str]) -> tuple[np.ndarray, str | None]:
    """``(rows, None)``: the pool rows the round may pick (not labeled, not vetoed, not sensitive
    on an open backend); ``(empty, reason)`` when none is left."""
    open_items = np.ones(len(loop.pool_.ids), dtype=bool)  # by the id index: np.isin sorts object ids (s at 1M)
    open_items[[loop.index_[i] for i in itertools.chain(labeled, loop.vetoed_) if i in loop.index_]] = False
    if not loop.confidential_:
        open_items &= ~loop.sensitive_  # sensitive items never go to an open crowd
    candidates = np.flatnonzero(open_items)
    if candidates.size:
        return candidates, None
    held = int(loop.sensitive_.sum()) if not loop.confidential_ else 0
    return candidates, "pool exhausted: every item is labeled" + (
        f" ({held} sensitive item(s) kept from this open backend)" if held else "")


def round_tasks(loop: Loop, r: int, chosen: np.ndarray, gold: list[str], relabel: dict[str, int],
                reward: Decimal | None, model: Model | None) -> list[Task]:
    """Round ``r``'s tasks: each chosen item's replicas (one more answer for a relabel), with
    ``model``'s pre-annotation, then the gold items' replicas (never pre-annotated)."""
    redundancy = loop.config.loop.redundancy
    predictions = predictions_for(model, loop.pool_.X, chosen)
    tasks = []
    for i in chosen:
        item = loop.pool_.ids[i]
        replicas = [relabel[item]] if item in relabel else range(redundancy)  # a relabel: one more answer
        tasks += [loop._task(r, item, rep, reward, predictions.get(int(i))) for rep in replicas]
    return tasks + [loop._task(r, item, rep, reward, kind="gold") for item in gold for rep in range(redundancy)]


def choose(loop: Loop, r: int, model: Model | None, candidates: np.ndarray, relabel: dict[str, int], k: int) -> np.ndarray:
    """The strategy's top ``k`` new items; with relabeling, doubtful labeled items compete."""
    doubtful = np.fromiter((loop.index_[i] for i in relabel), dtype=np.int64, count=len(relabel))
    measure = getattr(loop.strategy_, "measure", None)
    if not relabel or measure is None:  # random sampling: doubtful items are drawn like new ones
        return loop._select(r, model, np.union1d(candidates, doubtful), k)
    proba = quality.vote_proba(loop.ledger_, loop.name, list(relabel), np.asarray(model.classes_).astype(str))
    return quality.compete(measure, model, loop.pool_.X, loop._select(r, model, candidates, k), doubtful, proba, k)


def gold_items(loop: Loop, r: int, n: int) -> list[str]:
    """Gold items for round ``r`` (never the whole batch), minus retired (disputed) ones."""
    gold = loop.config.loop.gold
    if gold is None or n < 2:
        return []
    status = quality.gold_status(loop.ledger_.gold_answers(loop.name), loop.known_, gold)
    retired = {item for item, g in status.items() if g.disputed}
    return quality.plan_gold(loop.known_, retired, min(gold.per_round, n - 1), rng_for(loop.config.loop.seed, "gold", r))


def relabel_candidates(loop: Loop) -> dict[str, int]:
    """Doubtful labeled items that may compete with new ones: item -> its next replica."""
    relabel = loop.config.loop.relabel
    if relabel is None:
        return {}
    held = np.zeros(len(loop.pool_), dtype=bool) if loop.confidential_ else loop.sensitive_
    keep_out = set(loop.pool_.seed_labels) | set(loop.pool_.ids[held])
    return quality.relabel_candidates(loop.ledger_, loop.name, relabel, keep_out)


def more_answers(loop: Loop, r: int) -> list[Task]:
    """One more replica per doubtful item, within the budget. Derived from the ledger, so a
    resumed round asks for exactly the same tasks."""
    adaptive = loop.config.loop.adaptive
    if adaptive is None:
        return []
    recorded = loop.ledger_.tasks(loop.name, r)
    asked = [row for row in recorded if row["kind"] != "gold"]
    doubtful = doubtful_items(asked, loop.ledger_.votes(loop.name, round_no=r), adaptive)
    n, _ = items_affordable(loop.config.stop, len(doubtful), 1, loop._budget(r + 1))  # this round's spending included
    reward = from_micros(recorded[0]["reward_micros"]) if recorded and recorded[0]["reward_micros"] is not None else None
    tasks = loop._police(r, [loop._task(r, item, replica, reward) for item, replica in doubtful[:n]])
    loop.ledger_.record_tasks(tasks, loop.config.backend.name, first_rank=len(recorded))
    return tasks
