"""Stopping rules and batch sizing: how many items the next round may buy, or why it stops."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from clicloop.orchestrator.config import Stop
from clicloop.orchestrator.ledger.money import ZERO


@dataclass(frozen=True)
class Budget:
    """What has been spent before this round, and what a task is expected to cost: money exact
    (Decimal, the loop's currency), compared with the config's exact ``stop.max_cost``."""

    answers: int
    cost: Decimal
    total_hours: float
    cost_per_task: Decimal | None
    pool_left: int | None = None  # unlabeled items left: the forecast rule never counts on more


def stop_reason(stop: Stop, round_no: int, metric: float | None, spent: Budget, history: Sequence[dict[str, Any]], hours_between: Any) -> str | None:
    """Why the loop stops before buying round ``round_no``'s labels, or None to go on.

    ``history`` holds earlier rounds (round_no, metric); ``hours_between(a, b)`` gives the human
    hours bought in rounds a..b inclusive.
    """
    if stop.target_metric is not None and metric is not None and metric >= stop.target_metric:
        return f"target metric {stop.target_metric:g} reached ({metric:.4f})"
    if stop.max_rounds is not None and round_no >= stop.max_rounds:
        return f"round limit reached ({stop.max_rounds} labeling rounds)"
    if stop.max_labels is not None and spent.answers >= stop.max_labels:
        return f"label budget spent ({spent.answers} of {stop.max_labels} answers)"
    if stop.max_cost is not None and spent.cost >= stop.max_cost:
        return f"money budget spent ({spent.cost:.2f} of {_g(stop.max_cost)})"
    if stop.max_hours is not None and spent.total_hours >= stop.max_hours:
        return f"human-hours budget spent ({spent.total_hours:.2f} h of {stop.max_hours:g} h, unpaid time included)"
    if stop.plateau is not None and metric is not None:
        reason = _plateau(stop, round_no, metric, history, hours_between)
        if reason is not None:
            return reason
    if stop.forecast is not None and metric is not None:
        return _forecast(stop, spent, history, hours_between)
    return None


def _forecast(stop: Stop, spent: Budget, history: Sequence[dict[str, Any]], hours_between: Any) -> str | None:
    """Stop when the forecast to the target needs more than the hours or money left.

    The learning curve is fitted to the rounds before this one (their models' labels and
    metrics); each round's hours come from ``hours_between``, its money from the loop's money per
    human hour so far. The rule never fires on fewer than ``stop.forecast.min_rounds`` evaluated
    rounds, nor before any human time is recorded."""
    from clicloop.orchestrator.reporting.forecast import forecast

    rule = stop.forecast
    evaluated = [r for r in history if r.get("metric") is not None]
    if rule is None or stop.target_metric is None or len(evaluated) < rule.min_rounds or spent.total_hours <= 0:
        return None
    money_per_hour = float(spent.cost) / spent.total_hours  # the forecast's money is an estimate (a float model)
    rows = []
    for r in history:
        hours = float(hours_between(r["round_no"], r["round_no"]))
        rows.append({"n_labeled": r["n_labeled"], "metric": r.get("metric"), "total_hours": hours, "cost": hours * money_per_hour})
    fc = forecast(rows, stop.target_metric, pool_left=spent.pool_left)
    hours_left = None if stop.max_hours is None else max(0.0, stop.max_hours - spent.total_hours)
    cost_left = None if stop.max_cost is None else max(ZERO, stop.max_cost - spent.cost)
    if not fc.beyond(hours_left=hours_left, cost_left=cost_left, conservative=rule.conservative):
        return None
    if fc.status == "unreachable":
        return f"forecast: {fc.message}; the budget left cannot reach it"
    which = "optimistic end of the interval" if rule.conservative else "point forecast"
    needs = []
    if hours_left is not None and fc.hours_to_target is not None:
        h = fc.hours_to_target
        needs.append(f"{_n(h.point)} h ({_n(h.low)}-{_n(h.high)}) against {hours_left:.2f} h left")
    if cost_left is not None and fc.cost_to_target is not None:
        c = fc.cost_to_target
        needs.append(f"{_n(c.point)} ({_n(c.low)}-{_n(c.high)}) against {cost_left:.2f} left")
    return (f"forecast: reaching the target {stop.target_metric:g} needs about " + "; ".join(needs)
            + f" ({fc.level:.0%} interval; the {which} is over budget)")


def _g(amount: Decimal) -> str:
    """A configured budget as the stop reason writes it (``10``, ``12.5``): the text the ledger
    has always stored for it."""
    return f"{float(amount):g}"


def _n(v: float) -> str:
    return f"{v:.2f}" if v != float("inf") else "∞"


def _plateau(stop: Stop, round_no: int, metric: float, history: Sequence[dict[str, Any]], hours_between: Any) -> str | None:
    n = stop.plateau.rounds  # type: ignore[union-attr]
    earlier = {r["round_no"]: r["metric"] for r in history}
    before = earlier.get(round_no - n)
    if before is None:
        return None
    hours = hours_between(round_no - n, round_no - 1)
    if hours <= 0:
        return None
    rate = 100 * (metric - before) / hours
    if rate < stop.plateau.min_points_per_hour:  # type: ignore[union-attr]
        return (
            f"plateau: the last {n} rounds bought {rate:.2f} points per human hour "
            f"(< {stop.plateau.min_points_per_hour:g})"  # type: ignore[union-attr]
        )
    return None


def items_affordable(stop: Stop, batch_size: int, redundancy: int, spent: Budget) -> tuple[int, str | None]:
    """How many items the next batch may hold under the label and money budgets."""
    n = batch_size
    if stop.max_labels is not None:
        n = min(n, (stop.max_labels - spent.answers) // redundancy)
    if stop.max_cost is not None and spent.cost_per_task:  # exact: a budget of 10 pays 10 tasks of 1 (no float slack)
        n = min(n, int((stop.max_cost - spent.cost) // (spent.cost_per_task * redundancy)))
    if n <= 0:
        return 0, "budget left cannot pay for one more item"
    return n, None


def per_task(backend: Any) -> Decimal | None:
    """What the backend expects one task to cost (reward + fee), exact; None when it cannot say
    (``Backend.expected_cost_per_task``; a float from a third-party backend is read by its repr)."""
    from clicloop.orchestrator.ledger.money import exact

    value = backend.expected_cost_per_task()
    return None if value is None else exact(value)


def cost_at(backend: Any, reward: Decimal | None) -> Decimal | None:
    """What one task costs when the loop offers ``reward`` (``wage_floor.price_rewards``): the
    reward and the backend's fee on it, on a backend that pays the loop's price (``pays_task_reward``:
    the simulated crowds; Prolific, Label Studio and the file exchange pay their own); else
    :func:`per_task`. The money budget is checked at this cost: at the backend's own reward, a
    priced loop overspent ``stop.max_cost`` (9.98 of 9)."""
    return costing(backend)(reward)


def costing(backend: Any) -> Any:
    """:func:`cost_at` for one backend as a function of the reward, the backend's own price read
    once (a backend may compute it from every answer so far): the reward and its fee at the
    backend's ``fee_rate`` (``money.share``, as the backend charges it)."""
    from clicloop.orchestrator.ledger.money import exact, share

    base = per_task(backend)
    rate = getattr(backend, "fee_rate", None)
    if base is None or not getattr(backend, "pays_task_reward", False) or not (_number(rate) and rate >= 0):
        return lambda reward: base
    return lambda reward: base if reward is None else exact(reward) + share(exact(reward), rate)


def _number(value: Any) -> bool:
    import math
    import numbers

    return isinstance(value, (numbers.Real, Decimal)) and not isinstance(value, bool) and math.isfinite(value)
