"""Each wage row against its wage floor, and what its workers are still owed: the one rule the
dashboard's context (per loop) and its people views (per worker, backend and loop) share."""

from __future__ import annotations

from typing import Any

from clicloop.orchestrator.ledger import money


def mark_floor(ctx: Any, row: dict[str, Any], unknown: set[str]) -> None:
    """The row's floor, whether it is below it, and (a worker's row) what lifts it to the floor
    (``fairwork.wages.owed_amount``, the rule of ``ledger adjust``); "pay unknown" rows get no wage."""
    from clicloop.orchestrator.fairwork.wages import owed_amount

    row["floor"] = money.exact(ctx.floor.for_backend(row["backend"]).amount) if row["backend"] else money.exact(ctx.floor.amount)
    if row["loop"] in unknown:
        row.update(wage_paid_time="pay unknown", wage_total_time="pay unknown", income="pay unknown",
                   below_paid=False, below_total=False, owed=None)
        return
    row["below_paid"] = row["wage_paid_time"] is not None and row["wage_paid_time"] < row["floor"]
    row["below_total"] = row["wage_total_time"] is not None and row["wage_total_time"] < row["floor"]
    row["owed"] = owed_amount(row) if row["below_total"] else money.ZERO


def owed_sum(workers: list[dict[str, Any]], row: dict[str, Any], unknown: set[str]) -> Any:
    """What ``row``'s workers (those of its loop, and of its backend when it names one; rows marked
    by :func:`mark_floor`) are still owed: the workers' own amounts summed (one worker's surplus
    never pays another); None where the loop's pay is unknown."""
    if row["loop"] in unknown:
        return None
    return sum((w["owed"] for w in workers if all(w[k] == row[k] for k in ("loop", "backend") if row[k])), money.ZERO)
