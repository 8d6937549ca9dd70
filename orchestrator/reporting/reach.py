"""What reaching a metric took: the one definition of "labels (hours, money) to reach X" that
the CLI (quickstart and report), the dashboard and the labor card use.

Definition (docs/ledger.md, "How each number is defined"):

- the round that reached X is the FIRST round whose measured metric is >= X;
- labels to reach X are the human answers bought in the rounds BEFORE it (the answers its model
  was trained on, through the ledger); seed labels (given, not bought) are not counted, and with
  redundancy each answer counts;
- hours are those answers' human hours, unpaid time included; money is their planned cost
  (rewards, bonuses, fees: what the loop priced), exact; back-pay is reported on its own line;
- with the evaluation set's size known (the ledger records it per round: table ``eval_sizes``,
  migration 0007; a row's ``n_eval``), the round range is the sampling interval: the first
  round whose metric's upper 80% bound reaches X (optimistic) and the first whose lower bound
  does (conservative), from the binomial standard error of an accuracy on that many items.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from clicloop.orchestrator.ledger.money import ZERO

Z80 = 1.2816  # two-sided 80% normal quantile


@dataclass(frozen=True)
class Reach:
    """What reaching ``target`` took (``None`` everywhere when no round reached it yet).
    ``labels_low`` / ``labels_high``: the labels under the evaluation set's sampling error."""

    target: float
    round_no: int | None
    n_labeled: int | None  # labels the reaching model was trained on (seed labels included)
    labels: int | None  # human answers bought before it (the definition above)
    hours: float | None
    cost: Decimal | None
    labels_low: int | None = None
    labels_high: int | None = None


def _get(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, Mapping) else getattr(row, name)


def reach(rows: Sequence[Any], target: float, *, eval_size: int | None = None) -> Reach:
    """The first round of ``rows`` (one loop's rounds in order, with ``round_no``, ``n_labeled``,
    ``metric`` and what each round bought after its model: ``answers``, ``total_hours``,
    ``cost``) whose metric reached ``target``, and what the rounds before it bought. The interval
    uses ``eval_size``, else each row's own ``n_eval`` (the evaluation items the ledger recorded
    for that round); none when a measured round's size is unknown."""
    rows = list(rows)
    hit = _first(rows, lambda m, n: m >= target)
    if hit is None:
        return Reach(float(target), None, None, None, None, None)
    before = rows[:hit]
    labels = sum(int(_get(r, "answers")) for r in before)
    low = high = None
    sizes = [eval_size or _n_eval(r) for r in rows]
    if all(n for r, n in zip(rows, sizes) if _get(r, "metric") is not None):
        se = lambda m, n: Z80 * math.sqrt(max(m * (1 - m), 0.0) / n)  # noqa: E731
        opt = _first(rows, lambda m, n: m + se(m, n) >= target, sizes)
        cons = _first(rows, lambda m, n: m - se(m, n) >= target, sizes)
        low = sum(int(_get(r, "answers")) for r in rows[:opt]) if opt is not None else None
        high = sum(int(_get(r, "answers")) for r in rows[:cons]) if cons is not None else None
    return Reach(float(target), int(_get(rows[hit], "round_no")), int(_get(rows[hit], "n_labeled")), labels,
                 sum(float(_get(r, "total_hours")) for r in before), sum((_get(r, "cost") for r in before), ZERO), low, high)


def _n_eval(row: Any) -> int | None:
    """A row's evaluation-set size, when it carries one."""
    value = row.get("n_eval") if isinstance(row, Mapping) else getattr(row, "n_eval", None)
    return int(value) if value else None


def _first(rows: list[Any], test: Any, sizes: Sequence[int | None] | None = None) -> int | None:
    sizes = sizes if sizes is not None else [None] * len(rows)
    return next((i for i, (r, n) in enumerate(zip(rows, sizes))
                 if _get(r, "metric") is not None and test(float(_get(r, "metric")), n)), None)


def default_targets(rows: Sequence[Any], configured: float | None = None) -> list[float]:
    """The targets of the "cost to reach" table: every multiple of 0.05 above the first measured
    metric up to the best one, the best itself, and the loop's configured target."""
    metrics = [float(_get(r, "metric")) for r in rows if _get(r, "metric") is not None]
    if not metrics:
        return [configured] if configured is not None else []
    first, best = metrics[0], max(metrics)
    steps = {round(k * 0.05, 2) for k in range(1, 21) if first < round(k * 0.05, 2) <= best}
    shown_best = math.floor(best * 10_000) / 10_000  # rounded DOWN: the best round reaches its own row
    return sorted(steps | {shown_best} | ({float(configured)} if configured is not None else set()))


def reach_table(rows: Sequence[Any], targets: Sequence[float], *, eval_size: int | None = None) -> list[Reach]:
    """:func:`reach` for each target, lowest first."""
    return [reach(rows, t, eval_size=eval_size) for t in sorted(set(targets))]
