"""The report: per round, what the model gained and what the human work behind it cost.

Sums come from SQL (grouped by round); only the per-round ratios are computed here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from orchestrator.ledger import Ledger


@dataclass(frozen=True)
class ReportRow:
    """Round ``round_no``: the model fitted on ``n_labeled`` labels scored ``metric``; ``gain``
    is its change since the previous round, bought by that round's human work (``bought_*``)."""

    round_no: int
    model_version: str
    n_labeled: int
    metric: float | None
    gain: float | None
    answers: int
    active_hours: float
    total_hours: float
    cost: float
    income: float
    hours_per_point: float | None
    cost_per_point: float | None
    wage_paid_time: float | None
    wage_total_time: float | None
    stop_reason: str | None


@dataclass(frozen=True)
class Totals:
    loop: str
    rounds: int
    answers: int
    quarantined: int
    active_hours: float
    total_hours: float
    cost: float
    income: float
    currency: str
    first_metric: float | None
    final_metric: float | None
    hours_per_point: float | None
    cost_per_point: float | None
    wage_paid_time: float | None
    wage_total_time: float | None
    stop_reason: str | None


def build_report(ledger: Ledger, loop: str) -> tuple[list[ReportRow], Totals]:
    """Per-round rows and totals for one loop of an open ledger."""
    rounds = ledger.rounds(loop)
    effort = ledger.effort_by_round(loop)
    empty = {"answers": 0, "reward": 0.0, "fee": 0.0, "active_s": 0.0, "unpaid_s": 0.0, "quarantined": 0}
    rows: list[ReportRow] = []
    prev_metric: float | None = None
    prev_effort = empty
    for r in rounds:
        e = effort.get(r["round_no"], empty)
        gain = None if prev_metric is None or r["metric"] is None else r["metric"] - prev_metric
        bought_h = (prev_effort["active_s"] + prev_effort["unpaid_s"]) / 3600
        bought_cost = prev_effort["reward"] + prev_effort["fee"]
        active_h = e["active_s"] / 3600
        total_h = active_h + e["unpaid_s"] / 3600
        rows.append(
            ReportRow(
                r["round_no"], r["model_version"], r["n_labeled"], r["metric"], gain, e["answers"], active_h, total_h,
                e["reward"] + e["fee"], e["reward"], _per_point(bought_h, gain), _per_point(bought_cost, gain),
                _ratio(e["reward"], active_h), _ratio(e["reward"], total_h), r["stop_reason"],
            )
        )
        prev_metric = r["metric"] if r["metric"] is not None else prev_metric
        prev_effort = e
    return rows, _totals(ledger, loop, rows, effort)


def _totals(ledger: Ledger, loop: str, rows: list[ReportRow], effort: dict[int, dict[str, float]]) -> Totals:
    metrics = [r.metric for r in rows if r.metric is not None]
    active = sum(r.active_hours for r in rows)
    total = sum(r.total_hours for r in rows)
    cost = sum(r.cost for r in rows)
    income = sum(r.income for r in rows)
    gain = metrics[-1] - metrics[0] if len(metrics) > 1 else None
    return Totals(
        loop=loop, rounds=len(rows), answers=sum(r.answers for r in rows),
        quarantined=int(sum(e["quarantined"] for e in effort.values())), active_hours=active, total_hours=total,
        cost=cost, income=income, currency=ledger.currency(loop) or "",
        first_metric=metrics[0] if metrics else None, final_metric=metrics[-1] if metrics else None,
        hours_per_point=_per_point(total, gain), cost_per_point=_per_point(cost, gain),
        wage_paid_time=_ratio(income, active), wage_total_time=_ratio(income, total),
        stop_reason=rows[-1].stop_reason if rows else None,
    )


def _per_point(amount: float, gain: float | None) -> float | None:
    """Amount per accuracy point (0.01 of the metric); None without a positive gain."""
    return amount / (100 * gain) if gain is not None and gain > 0 and amount > 0 else None


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def report_dict(rows: list[ReportRow], totals: Totals) -> dict[str, Any]:
    return {"rounds": [asdict(r) for r in rows], "totals": asdict(totals)}


def render_report(rows: list[ReportRow], totals: Totals, wage_floor: float | None = None) -> Any:
    """A rich renderable: the per-round table and a totals line."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    cur = totals.currency
    table = Table(title=f"loop {totals.loop}", title_justify="left")
    for heading in ("round", "labels", "metric", "gain", "bought", "active h", "total h", f"cost {cur}",
                    "h/point", f"{cur}/point", f"wage paid {cur}/h", f"wage all {cur}/h"):
        table.add_column(heading, justify="right")
    for r in rows:
        table.add_row(
            str(r.round_no), str(r.n_labeled), _f(r.metric, 4), _f(r.gain, 4, signed=True), str(r.answers),
            _f(r.active_hours, 3), _f(r.total_hours, 3), _f(r.cost, 2), _f(r.hours_per_point, 3),
            _f(r.cost_per_point, 2), _f(r.wage_paid_time, 2), _f(r.wage_total_time, 2),
        )
    lines = [
        f"total: {totals.answers} answers ({totals.quarantined} quarantined), {totals.active_hours:.2f} h active, "
        f"{totals.total_hours:.2f} h with unpaid time, cost {totals.cost:.2f} {cur} (workers got {totals.income:.2f})",
        f"metric {_f(totals.first_metric, 4)} -> {_f(totals.final_metric, 4)}; per point: "
        f"{_f(totals.hours_per_point, 3)} h, {_f(totals.cost_per_point, 2)} {cur}",
        f"effective wage: {_f(totals.wage_paid_time, 2)} {cur}/h on paid time, "
        f"{_f(totals.wage_total_time, 2)} {cur}/h counting unpaid time"
        + (f" (floor {wage_floor:.2f})" if wage_floor is not None else ""),
    ]
    if totals.stop_reason:
        lines.append(f"stopped: {totals.stop_reason}")
    return Group(table, *(Text(line) for line in lines))


def _f(v: float | None, digits: int, *, signed: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"
