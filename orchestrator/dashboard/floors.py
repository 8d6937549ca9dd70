"""Each wage row against its wage floor, and what its workers are still owed: the one rule the
dashboard's context (per loop) and its people views (per worker, backend and loop) share."""

from __future__ import annotations

from typing import Any

from clicloop.orchestrator.ledger import money


def mark_floor(ctx: Any, row: dict[str, Any], unknown: set[str]) -> None:
    """The row's floor, whether it is below it, and (a worker's row) what lifts it to the floor
    (``fairwork.wages.owed_amount``, the rule of ``ledger adjust``, less back-pay booked after a
    filtered model version's rounds, as its labor card counts); "pay unknown" rows get no wage.
    A floor in another currency than the row's pay is not compared (``fairwork.currency``): no
    floor, nobody below, owed None."""
    from clicloop.orchestrator.fairwork.wages import owed_amount

    row["floor"] = _floor(ctx, row)
    row["currency"] = ctx.pay_currencies.get((row["loop"], row["backend"])) if row["backend"] else ctx.loop_currency(row["loop"])
    if row["loop"] in unknown:
        row.update(wage_paid_time="pay unknown", wage_total_time="pay unknown", income="pay unknown",
                   below_paid=False, below_total=False, owed=None)
        return
    if row["floor"] is None:
        row.update(floor="not compared", below_paid=False, below_total=False, owed=None)
        return
    row["below_paid"] = row["wage_paid_time"] is not None and row["wage_paid_time"] < row["floor"]
    row["below_total"] = row["wage_total_time"] is not None and row["wage_total_time"] < row["floor"]
    row["owed"] = owed_amount(row) if row["below_total"] else money.ZERO
    if row.get("worker") is not None and row["owed"]:  # a version's debt that later back-pay paid (its labor card's rule)
        row["owed"] = max(money.ZERO, row["owed"] - ctx.paid_later.get((row["loop"], row["backend"], row["worker"]), money.ZERO))


def _floor(ctx: Any, row: dict[str, Any]) -> Any:
    """A backend's row: the floor its pay is held to (None: another currency). A loop's row: its
    backend's, the configured floor where it has several, None where one is not compared."""
    from clicloop.orchestrator.fairwork.currency import held_to

    currencies = ctx.pay_currencies
    if row["backend"]:
        return held_to(ctx.floor, row["backend"], currencies.get((row["loop"], row["backend"])))
    floors = [held_to(ctx.floor, b, cur) for (lp, b), cur in currencies.items() if lp == row["loop"]]
    if any(f is None for f in floors):
        return None
    return floors[0] if len(floors) == 1 else money.exact(ctx.floor.amount)


def owed_sum(workers: list[dict[str, Any]], row: dict[str, Any], unknown: set[str]) -> Any:
    """What ``row``'s workers (those of its loop, and of its backend when it names one; rows marked
    by :func:`mark_floor`) are still owed: the workers' own amounts summed (one worker's surplus
    never pays another); None where the loop's pay is unknown or a floor is not compared."""
    if row["loop"] in unknown:
        return None
    owed = [w["owed"] for w in workers if all(w[k] == row[k] for k in ("loop", "backend") if row[k])]
    return None if any(o is None for o in owed) else sum(owed, money.ZERO)
