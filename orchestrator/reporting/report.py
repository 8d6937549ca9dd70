"""The report: per round, what the model gained and what the human work behind it cost.

Sums come from SQL (grouped by round); only the per-round ratios are computed here. A loop whose
answers carry no payment at all (in-house annotators whose pay was never given) has its pay
*unknown*: the report says so and computes no cost per point and no wage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from clicloop.orchestrator.fairwork.currency import floor_label, pay_currencies
from clicloop.orchestrator.fairwork.wages import fair_cost, owed, pay_unknown
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger.money import ZERO, fmt, ratio
from clicloop.orchestrator.reporting.reach import default_targets, reach_table

if TYPE_CHECKING:
    from clicloop.orchestrator.config import Stop, WageFloor


@dataclass(frozen=True)
class ReportRow:
    """Round ``round_no``: the model fitted on ``n_labeled`` labels scored ``metric``; ``gain``
    is its change since the previous round, bought by the previous round's human work.

    ``answers``, hours, ``cost`` (planned: rewards, bonuses and fees, what the loop priced) and
    ``planned_pay`` (the workers' share of it) are what this round bought after fitting its model;
    ``adjustments`` is back-pay booked in this round, its own line: per-round figures (cost per
    point, wages) use planned money only, so back-pay never looks like a round's price. Money is
    exact (Decimal) in ``Totals.currency``."""

    round_no: int
    model_version: str
    n_labeled: int
    metric: float | None
    gain: float | None
    answers: int
    active_hours: float
    total_hours: float
    cost: Decimal
    planned_pay: Decimal
    adjustments: Decimal
    hours_per_point: float | None
    cost_per_point: Decimal | None
    wage_paid_time: Decimal | None
    wage_total_time: Decimal | None
    stop_reason: str | None
    n_eval: int | None = None  # evaluation items the metric was measured on (the "cost to reach" interval)


@dataclass(frozen=True)
class Totals:
    """A loop's totals. ``cost`` is the planned cost; ``adjustments`` the back-pay booked;
    ``owed`` what lifting every worker below the floor would still cost (None when no floor was
    given or pay is unknown); ``fair_cost`` = cost + adjustments + owed (``fairwork.wages.fair_cost``;
    owed counts as 0 without a floor). Wages are on ``paid_to_workers``, what the workers received
    (``planned_pay`` and adjustments), as the per-worker views and the labor card compute them."""

    loop: str
    rounds: int
    answers: int
    quarantined: int
    active_hours: float
    total_hours: float
    cost: Decimal
    planned_pay: Decimal
    paid_to_workers: Decimal
    currency: str
    first_metric: float | None
    final_metric: float | None
    hours_per_point: float | None
    cost_per_point: Decimal | None
    wage_paid_time: Decimal | None
    wage_total_time: Decimal | None
    stop_reason: str | None
    pay_known: bool = True
    adjustments: Decimal = ZERO
    owed: Decimal | None = None
    fair_cost: Decimal | None = None
    workers_below_floor: int | None = None
    waiting_hours: float = 0.0  # unpaid waiting recorded on answers (no task available: caused by the requester)
    waiting_share: float | None = None  # waiting / active time
    staleness_mean: float | None = None  # continuous mode: answers between the version that chose a task and its answer
    staleness_median: float | None = None
    staleness_max: float | None = None
    returned_hours: float = 0.0  # unpaid work that brought no answer (a submission returned or timed out), in the total time
    batches: dict[str, Any] | None = None  # the batches the backend published (ledger.unpaid.batch_summary), None without any
    floor: str | None = None  # the wage floor the loop's workers are held to, as text (fairwork.currency.floor_label)
    not_compared: tuple[str, ...] = ()  # backends whose floor is in another currency than their pay (owed is None then)


def build_report(ledger: Ledger, loop: str, floor: WageFloor | None = None) -> tuple[list[ReportRow], Totals]:
    """Per-round rows and totals for one loop of an open ledger; with ``floor``, the wages still
    owed below it (``Totals.owed``)."""
    rounds = ledger.rounds(loop)
    effort = ledger.effort_by_round(loop)
    empty = {"answers": 0, "reward": ZERO, "adjustment": ZERO, "fee": ZERO, "active_s": 0.0, "unpaid_s": 0.0, "quarantined": 0}
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
                e["reward"] + e["fee"], e["reward"], e["adjustment"], _per_point(bought_h, gain), money_per_point(bought_cost, gain),
                ratio(e["reward"], active_h), ratio(e["reward"], total_h), r["stop_reason"], r.get("n_eval"),
            )
        )
        prev_metric = r["metric"] if r["metric"] is not None else prev_metric
        prev_effort = e
    totals = _totals(ledger, loop, rows, effort)
    if pay_unknown(ledger, loop):  # answers, and not one payment: pay was never given
        rows = [replace(r, cost_per_point=None, wage_paid_time=None, wage_total_time=None) for r in rows]
        totals = replace(totals, cost_per_point=None, wage_paid_time=None, wage_total_time=None, pay_known=False)
    elif floor is not None:
        due = owed(ledger, loop, floor)
        totals = replace(totals, owed=due["amount"], fair_cost=fair_cost(totals.cost, totals.adjustments, due["amount"]),
                         workers_below_floor=due["workers_below_floor"], not_compared=tuple(due["not_compared"]),
                         floor=floor_label(floor, pay_currencies(ledger.engine_, loop), loop))
    return rows, totals


def _totals(ledger: Ledger, loop: str, rows: list[ReportRow], effort: dict[int, dict[str, Any]]) -> Totals:
    metrics = [r.metric for r in rows if r.metric is not None]
    active = sum(r.active_hours for r in rows)
    total = sum(r.total_hours for r in rows)
    cost = sum((r.cost for r in rows), ZERO)
    planned_pay = sum((r.planned_pay for r in rows), ZERO)
    adjusted = sum((e["adjustment"] for e in effort.values()), ZERO)  # also in rounds without a model (none are lost)
    gain = metrics[-1] - metrics[0] if len(metrics) > 1 else None
    return Totals(
        loop=loop, rounds=len(rows), answers=sum(r.answers for r in rows),
        quarantined=int(sum(e["quarantined"] for e in effort.values())), active_hours=active, total_hours=total,
        cost=cost, planned_pay=planned_pay, paid_to_workers=planned_pay + adjusted, currency=ledger.currency(loop) or "",
        first_metric=metrics[0] if metrics else None, final_metric=metrics[-1] if metrics else None,
        hours_per_point=_per_point(total, gain), cost_per_point=money_per_point(cost, gain),
        wage_paid_time=ratio(planned_pay + adjusted, active), wage_total_time=ratio(planned_pay + adjusted, total),
        stop_reason=rows[-1].stop_reason if rows else None, adjustments=adjusted, fair_cost=fair_cost(cost, adjusted, ZERO),
        **_beside_the_rounds(ledger, loop),
    )


def _beside_the_rounds(ledger: Ledger, loop: str) -> dict[str, Any]:
    """The totals no round row carries: waiting and staleness (:func:`ledger.continuous.summary`),
    returned work and the batches the backend published."""
    from clicloop.orchestrator.ledger import continuous as cl
    from clicloop.orchestrator.ledger.accounting import unpaid_by_kind
    from clicloop.orchestrator.ledger.unpaid import batch_summary

    return {**cl.summary(ledger, loop), "returned_hours": unpaid_by_kind(ledger.engine_, loop)["returned"],
            "batches": batch_summary(ledger, loop)}


def _per_point(amount: float, gain: float | None) -> float | None:
    """Hours per accuracy point (0.01 of the metric); None without a positive gain."""
    return amount / (100 * gain) if gain is not None and gain > 0 and amount > 0 else None


def money_per_point(amount: Decimal, gain: float | None) -> Decimal | None:
    """Money per accuracy point (0.01 of the metric), to the micro-unit; None without a positive gain."""
    return ratio(amount, 100 * gain) if gain is not None and gain > 0 and amount > 0 else None


def report_dict(rows: list[ReportRow], totals: Totals) -> dict[str, Any]:
    """The report as a JSON-ready dict: money stays Decimal (``json.dumps(..., default=money.json_default)``
    writes it as exact decimal strings), each section names its currency."""
    return {"currency": totals.currency or None, "rounds": [asdict(r) for r in rows], "totals": asdict(totals),
            "reach": [asdict(x) for x in reach_table(rows, default_targets(rows))]}


def render_report(rows: list[ReportRow], totals: Totals) -> Any:
    """A rich renderable: the per-round table, the "cost to reach" table and the totals lines."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    cur = totals.currency
    money = (lambda v: fmt(v)) if totals.pay_known else (lambda v: "?")
    table = Table(title=f"loop {totals.loop}", title_justify="left")
    unit = f" {cur}" if cur else ""  # no currency where no payment was recorded
    for heading in ("round", "model version", "labels", "metric", "gain", "bought", "active h", "total h", f"cost{unit}",
                    f"back-pay{unit}", "h/point", f"cost{unit}/point", f"wage paid{unit}/h", f"wage all{unit}/h"):
        table.add_column(heading, justify="left" if heading == "model version" else "right")
    for r in rows:
        table.add_row(
            str(r.round_no), r.model_version, str(r.n_labeled), _f(r.metric, 4), _f(r.gain, 4, signed=True), str(r.answers),
            _f(r.active_hours, 3), _f(r.total_hours, 3), money(r.cost), money(r.adjustments) if r.adjustments else "-",
            _f(r.hours_per_point, 3), money(r.cost_per_point), money(r.wage_paid_time), money(r.wage_total_time),
        )
    review = totals.loop.endswith(":review")  # a deployment's reviews: no learning curve, so no target to reach
    parts: list[Any] = [table] if review else [table, reach_renderable(rows, cur if totals.pay_known else None)]
    hours = (f"total: {totals.answers} answers ({totals.quarantined} quarantined), {totals.active_hours:.2f} h active, "
             f"{totals.total_hours:.2f} h with unpaid time")
    if not totals.pay_known:
        return Group(*parts, Text(f"{hours}; pay unknown: no payment is recorded for this loop, so no cost and no wage "
                                  "are computed (for Label Studio: `clicloop serve labelstudio --hourly-wage ...`)"),
                     Text(f"metric {_f(totals.first_metric, 4)} -> {_f(totals.final_metric, 4)}; per point: "
                          f"{_f(totals.hours_per_point, 3)} h"),
                     *([Text(f"stopped: {totals.stop_reason}")] if totals.stop_reason else []))
    owed_text = (f", still owed {fmt(totals.owed, cur)}" if totals.owed is not None
                 else ", owed not compared (the floor's currency is not the pay's)" if totals.not_compared else "")
    lines = [
        f"{hours}",
        f"planned cost {fmt(totals.cost, cur)} (workers' planned pay {fmt(totals.planned_pay, cur)}); back-pay booked "
        f"{fmt(totals.adjustments, cur)}{owed_text}; fair cost {fmt(totals.fair_cost, cur)}",
        "a deployment's review work: its errors found and cost per error fixed are in `clicloop deploy status`"
        if review else f"metric {_f(totals.first_metric, 4)} -> {_f(totals.final_metric, 4)}; per point (planned cost): "
        f"{_f(totals.hours_per_point, 3)} h, {fmt(totals.cost_per_point, cur)}",
        f"effective wage (back-pay included): {fmt(totals.wage_paid_time, cur)}/h on paid time, "
        f"{fmt(totals.wage_total_time, cur)}/h counting unpaid time"
        + (f" (floor {totals.floor})" if totals.floor is not None else ""),
        *totals.not_compared,
    ]
    lines += _waiting_lines(totals)
    if totals.stop_reason:
        lines.append(f"stopped: {totals.stop_reason}")
    return Group(*parts, *(Text(line) for line in lines))


def reach_renderable(rows: list[ReportRow], currency: str | None) -> Any:
    """The "cost to reach X" table (clicloop.orchestrator.reporting.reach: one definition everywhere)."""
    from rich.table import Table

    table = Table(title="cost to reach (answers bought before the first round that measured the target; "
                        "seed labels not counted; planned cost; labels' 80% interval from the evaluation set's sampling "
                        "error)", title_justify="left")
    for heading in ("target", "round", "labels", "labels 80%", "human h", f"cost {currency}" if currency else "cost"):
        table.add_column(heading, justify="right")
    for x in reach_table(rows, default_targets(rows)):
        table.add_row(f"{x.target:.4f}", "not yet" if x.round_no is None else str(x.round_no), _i(x.labels),
                      labels_interval(x), _f(x.hours, 3), fmt(x.cost) if currency else "?" if x.round_no is not None else "-")
    return table


def labels_interval(x: Any) -> str:
    """A :class:`~clicloop.orchestrator.reporting.reach.Reach`'s labels interval as text: ``10-30``;
    ``10+`` while the conservative end is not reached yet; ``-`` without an evaluation-set size
    (or a target not reached)."""
    if x.labels_low is None:
        return "-"
    return f"{x.labels_low}-{x.labels_high}" if x.labels_high is not None else f"{x.labels_low}+"


def _i(v: int | None) -> str:
    return "-" if v is None else str(v)


def _waiting_lines(totals: Totals) -> list[str]:
    out = []
    if totals.waiting_share is not None:
        out.append(f"waiting (unpaid, counted in the total time): {totals.waiting_hours:.2f} h, "
                   f"{100 * totals.waiting_share:.1f}% of active time")
    if totals.returned_hours > 0:
        out.append(f"returned or timed-out work (unpaid, counted in the total time): {totals.returned_hours:.2f} h")
    if totals.batches:
        b = totals.batches
        rate = f", the last at {b['last_rate_per_hour']:.1f} answers/h" if b["last_rate_per_hour"] is not None else ""
        out.append(f"batches published: {b['batches']} for {b['tasks']} task(s), {b['places']} place(s) "
                   f"({b['min_places']}-{b['max_places']} each); {b['rate_sized']} sized by the measured answer rate{rate}")
    if totals.staleness_mean is not None:
        out.append(f"staleness: {totals.staleness_mean:.1f} answers on average (median {totals.staleness_median:.1f}, at most {totals.staleness_max:.0f}) between "
                   "the model version that chose a task and its answer")
    return out


def _f(v: float | None, digits: int, *, signed: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def forecasts(ledger: Ledger, reports: dict[str, tuple[list[ReportRow], Totals]], target: float | None = None,
              stops: Mapping[str, Stop] | None = None) -> dict[str, dict[str, Any]]:
    """Per labeling loop: the forecast to its target (``target``, else the ``stop.target_metric``
    of the loop's config in ``stops``, else 2 points above the best metric of the loops reported,
    rounded up to a whole point (:func:`.forecast.default_target`):
    the dashboard's rule), the budget left under that config's ``max_hours`` / ``max_cost``, and a
    line for people. (The ledger keeps no stop rules: they come from the config.)"""
    import math

    from clicloop.orchestrator.ledger.money import estimate, exact
    from clicloop.orchestrator.reporting.forecast import default_target, describe, forecast

    stops = stops or {}
    best = max((r.metric for rows, _ in reports.values() for r in rows if r.metric is not None), default=None)
    out: dict[str, dict[str, Any]] = {}
    for loop, (rows, totals) in reports.items():
        if loop.endswith(":review"):  # post-deployment review work has no learning curve
            continue
        stop = stops.get(loop)
        configured = stop.target_metric if stop is not None else None
        aim = target if target is not None else default_target(configured, best)
        fc = forecast(rows, aim)
        hours_left = max(0.0, stop.max_hours - totals.total_hours) if stop is not None and stop.max_hours is not None else None
        cost_left = max(ZERO, exact(stop.max_cost) - totals.cost) if stop is not None and stop.max_cost is not None else None

        def interval(iv: Any, as_money: bool = False) -> dict[str, Any] | None:
            if iv is None:
                return None
            return {k: (estimate(v) if as_money else v if math.isfinite(v) else None)
                    for k, v in (("point", iv.point), ("low", iv.low), ("high", iv.high))}

        out[loop] = {"target": aim, "target_from": "option" if target is not None else "config" if configured is not None else "default",
                     "status": fc.status, "labels": interval(fc.labels_to_target), "hours": interval(fc.hours_to_target),
                     "cost": interval(fc.cost_to_target, as_money=True), "currency": totals.currency or None,
                     "hours_left": hours_left, "cost_left": cost_left, "marginal": marginal_dict(fc),
                     "beyond_budget": fc.beyond(hours_left=hours_left, cost_left=cost_left),
                     "text": describe(fc, totals.currency, hours_left, cost_left)}
    return out


def marginal_dict(fc: Any) -> dict[str, Any] | None:
    """The marginal cost of the next point from the fitted curve (``Forecast.marginal``), JSON-ready."""
    import math

    from clicloop.orchestrator.ledger.money import estimate

    m = fc.marginal()
    if m is None:
        return None
    finite = math.isfinite(m.labels)  # JSON has no infinity: null, with "beyond_plateau" saying why
    return {"labels_per_point": m.labels if finite else None, "hours_per_point": m.hours if finite else None,
            "cost_per_point": estimate(m.cost), "beyond_plateau": not finite,
            "curve_now": m.curve_now, "curve_plateau": m.plateau}
