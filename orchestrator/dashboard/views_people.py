"""Views of the people behind the model: effective hourly wages against the floor (on paid and
on total time), unpaid overhead by kind, and rejections with their reasons."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from clicloop.orchestrator.dashboard import queries
from clicloop.orchestrator.dashboard.base import FLOOR, PALETTE, Context, Number, View, fmt, layout, table
from clicloop.orchestrator.dashboard.floors import mark_floor, owed_sum
from clicloop.orchestrator.ledger import money

MAX_WORKER_ROWS = 100  # the per-worker table lists the lowest wages first; the figure shows everyone
UNPAID_KINDS = (("search", "searching for tasks"), ("wait", "waiting"), ("returned", "returned work"),
                ("qualification", "qualification tests"))


def wages(ctx: Context) -> View:
    import plotly.graph_objects as go

    cur = ctx.currency
    view = View("wages", "Effective hourly wages", f"Worker income per hour on paid time (active seconds) and on total time "
                f"(unpaid searching, waiting, returned work and qualification included), against the wage floor "
                f"({ctx.floor.amount:.2f} {ctx.floor.currency}/h unless a backend has its own). The gap is the unpaid work.")
    workers = [dict(w) for w in ctx.workers]
    backends = queries.rollup(workers, ("loop", "backend"))
    if not workers:
        view.empty = "No answer in scope: nobody has worked on these loops yet."
        return view
    unknown = ctx.pay_unknown
    loops = queries.rollup(workers, ("loop",))
    for row in workers:
        mark_floor(ctx, row, unknown)
    for row in backends + loops:  # owed sums the workers' own amounts (one worker's surplus never pays another)
        row["backend"] = row.get("backend", "")
        mark_floor(ctx, row, unknown)
        row["owed"] = owed_sum(workers, row, unknown)
    known = [r for r in workers if r["loop"] not in unknown]
    view.numbers += [
        Number("workers", "people (per loop and backend)", len(workers), f"{len(workers):,}"),
        per_currency("median_wage_paid", "median wage, paid time", known, "wage_paid_time", _median, "/h"),
        per_currency("median_wage_total", "median wage, total time", known, "wage_total_time", _median, "/h"),
        Number("below_floor_paid", "below the floor on paid time", sum(r["below_paid"] for r in workers),
               f"{sum(r['below_paid'] for r in workers):,} of {_compared(workers)}"),
        Number("below_floor_total", "below the floor on total time", sum(r["below_total"] for r in workers),
               f"{sum(r['below_total'] for r in workers):,} of {_compared(workers)}"),
        per_currency("owed", "owed: back-pay still due up to the floor (total time)", known, "owed",
                     lambda v: sum(v, money.ZERO), "", empty=money.fmt(money.ZERO, cur)),
    ]
    for lp in loops:
        view.numbers.append(Number(f"loop_owed:{lp['loop']}", f"{lp['loop']}: owed up to the floor", lp["owed"],
                                   "pay unknown" if lp["loop"] in unknown else "not compared" if lp["owed"] is None
                                   else money.fmt(lp["owed"], lp["currency"] or cur)))
    view.notes += ctx.not_compared
    for b in backends:
        view.numbers.append(Number(f"backend_wage_total:{b['loop']}:{b['backend']}", f"{b['loop']} / {b['backend']}: wage on total time",
                                   b["wage_total_time"], "pay unknown" if b["loop"] in unknown
                                   else fmt(b["wage_total_time"], 2, unit=f"{b['currency'] or cur}/h")))
    if unknown:
        view.notes.append(f"Pay unknown for {', '.join(sorted(unknown))}: answers and not one payment are recorded, so no wage "
                          "and no owed amount is computed (for Label Studio: clicloop serve labelstudio --hourly-wage ...).")
    view.figures.append(_backend_figure(go, backends, cur))
    view.figures.append(_worker_figure(go, ctx, workers, cur))
    view.tables.append(table("Per loop and backend", ctx.money_columns([
        ("loop", "loop", None), ("backend", "backend", None), ("answers", "answers", 0), ("active_hours", "paid hours", 2),
        ("unpaid_hours", "unpaid hours", 2), ("income", "income {cur}", 2), ("wage_paid_time", "wage paid {cur}/h", 2),
        ("wage_total_time", "wage total {cur}/h", 2), ("floor", "floor/h", 2), ("owed", "owed {cur}", 2)]), backends))
    lowest = sorted(workers, key=lambda r: (_num(r["wage_total_time"]) is None, _num(r["wage_total_time"]) or 0.0))[:MAX_WORKER_ROWS]
    note = (f"the {MAX_WORKER_ROWS} lowest of {len(workers):,} workers by wage on total time" if len(workers) > MAX_WORKER_ROWS
            else None)
    view.tables.append(table("Per worker (pseudonyms), lowest wage on total time first", ctx.money_columns([
        ("loop", "loop", None), ("backend", "backend", None), ("worker", "worker", None), ("answers", "answers", 0),
        ("active_hours", "paid hours", 3), ("unpaid_hours", "unpaid hours", 3), ("income", "income {cur}", 2),
        ("wage_paid_time", "wage paid {cur}/h", 2), ("wage_total_time", "wage total {cur}/h", 2), ("owed", "owed {cur}", 2),
        ("rejected", "rejected", 0)]), lowest, note))
    return view


def _reversed(by_currency: dict[str, Any], cur: str) -> Number:
    """Worker pay reversed by rejections: one amount per currency, never a sum across them."""
    if len(by_currency) <= 1:
        amount = next(iter(by_currency.values()), money.ZERO)
        return Number("income_reversed", "worker pay reversed", amount, money.fmt(amount, next(iter(by_currency), cur)))
    return Number("income_reversed", "worker pay reversed", None, "; ".join(money.fmt(v, c) for c, v in by_currency.items()))


def _compared(workers: list[dict[str, Any]]) -> str:
    """How many workers' wages were compared with a floor ("13" counted the 5 whose floor is in
    another currency than their pay, and who are never below it)."""
    apart = sum(r["floor"] == "not compared" for r in workers)
    return f"{len(workers) - apart:,}" + (f" ({apart:,} not compared: a floor in another currency)" if apart else "")


def _median(values: list[Any]) -> Any:
    return money.percentile(values, 50)


def per_currency(key: str, label: str, rows: list[dict[str, Any]], field: str, combine: Any, unit: str,
                 empty: str = "-") -> Number:
    """A figure of ``rows``' ``field`` (money, or money per hour with ``unit`` "/h") combined
    (summed, their median) per currency: one currency gives the figure; several give no single
    value and each currency's figure in the text (an amount in euros never meets one in dollars)."""
    groups: dict[str, list[Any]] = {}
    for r in rows:
        if r.get(field) is not None:
            groups.setdefault(r.get("currency") or "", []).append(r[field])
    figures = {cur: combine(values) for cur, values in sorted(groups.items())}
    text = "; ".join(money.fmt(v, f"{cur}{unit}".strip() or None) for cur, v in figures.items()) or empty
    return Number(key, label, next(iter(figures.values())) if len(figures) == 1 else None, text)


def _num(value: Any) -> float | None:
    """A figure for a chart (charts draw floats; the text and tables keep the exact Decimal)."""
    return float(value) if isinstance(value, (int, float, Decimal)) else None


def _backend_figure(go: Any, backends: list[dict[str, Any]], cur: str) -> Any:
    names = [f"{b['loop']} / {b['backend']}" for b in backends]
    fig = go.Figure()
    for key, label, color in (("wage_paid_time", "paid time", PALETTE[0]), ("wage_total_time", "total time", PALETTE[1])):
        vals = [_num(b[key]) for b in backends]
        fig.add_trace(go.Bar(y=names, x=vals, name=label, orientation="h", marker_color=color,
                             text=[fmt(v, 2) for v in vals], textposition="outside", cliponaxis=False))
    floors = {f for f in (_num(b["floor"]) for b in backends) if f is not None}  # "not compared": no line
    top = max([_num(b[k]) or 0.0 for b in backends for k in ("wage_paid_time", "wage_total_time")] + list(floors))
    for floor in sorted(floors):
        fig.add_vline(x=floor, line={"color": FLOOR, "dash": "dash", "width": 2}, annotation_text=f"floor {floor:.2f}",
                      annotation_position="top")
    return layout(fig, title=f"Wage per loop and backend ({cur}/h)", barmode="group", xaxis_title=f"{cur} per hour",
                  xaxis_range=[0, top * 1.2],
                  height=max(260, 90 + 70 * len(backends)), yaxis={"automargin": True})


def _worker_figure(go: Any, ctx: Context, workers: list[dict[str, Any]], cur: str) -> Any:
    """Every worker: wage on total time against wage on paid time; below the floor line is unfair."""
    fig = go.Figure()
    for i, loop in enumerate(sorted({w["loop"] for w in workers})):
        pts = [w for w in workers if w["loop"] == loop and _num(w["wage_total_time"]) is not None]
        fig.add_trace(go.Scatter(
            x=[_num(w["wage_paid_time"]) for w in pts], y=[_num(w["wage_total_time"]) for w in pts], mode="markers", name=loop,
            marker={"color": ctx.color(loop), "symbol": ["circle", "square", "diamond", "triangle-up"][i % 4], "size": 7, "opacity": 0.8},
            customdata=[[w["worker"], w["backend"], w["answers"]] for w in pts],
            hovertemplate="worker %{customdata[0]} (%{customdata[1]}), %{customdata[2]} answers<br>"
                          f"paid time %{{x:.2f}} {cur}/h<br>total time %{{y:.2f}} {cur}/h<extra>{loop}</extra>"))
    fig.add_hline(y=float(ctx.floor.amount),  # charts draw floats; the text keeps the Decimal
                  line={"color": FLOOR, "dash": "dash", "width": 2},
                  annotation_text=f"floor {ctx.floor.amount:.2f} (total time)", annotation_position="bottom right")
    return layout(fig, title="Each worker: wage on total time vs on paid time", xaxis_title=f"paid time ({cur}/h)",
                  yaxis_title=f"total time ({cur}/h)")


def unpaid(ctx: Context) -> View:
    import plotly.graph_objects as go

    view = View("unpaid", "Unpaid overhead", "Hours people spent without pay, by kind: searching for tasks, waiting, work "
                "returned unfinished, and qualification tests.")
    per_loop = queries.unpaid_by_loop_kind(ctx.engine, ctx.scope)
    if not per_loop:
        view.empty = "No answer in scope."
        return view
    totals = {k: sum(v[k] for v in per_loop.values()) for k, _ in UNPAID_KINDS}
    active = {lp: v["active"] for lp, v in per_loop.items()}
    for kind, label in UNPAID_KINDS:
        view.numbers.append(Number(f"unpaid:{kind}", label, totals[kind], fmt(totals[kind], 2, unit="h")))
    all_unpaid, all_active = sum(totals.values()), sum(active.values())
    share = all_unpaid / (all_unpaid + all_active) if all_unpaid + all_active else None
    view.numbers.append(Number("unpaid_share", "unpaid share of all human time", share, fmt(100 * share, 1, unit="%") if share is not None else "-"))
    fig = go.Figure()
    loops = sorted(per_loop)
    for (kind, label), color in zip(UNPAID_KINDS, PALETTE[1:]):
        vals = [per_loop[lp][kind] for lp in loops]
        fig.add_trace(go.Bar(y=loops, x=vals, name=label, orientation="h", marker_color=color,
                             text=[fmt(v, 2) for v in vals], textposition="inside", insidetextanchor="middle"))
    view.figures.append(layout(fig, title="Unpaid hours by kind, per loop", barmode="stack", xaxis_title="hours",
                               height=max(240, 110 + 60 * len(loops)), yaxis={"automargin": True}))
    rows = [{"loop": lp, **per_loop[lp], "unpaid": sum(per_loop[lp][k] for k, _ in UNPAID_KINDS)} for lp in loops]
    view.tables.append(table("Unpaid hours per loop", [("loop", "loop", None)] + [(k, lab, 3) for k, lab in UNPAID_KINDS]
                             + [("unpaid", "unpaid in all", 3), ("active", "paid (active)", 3)], rows))
    return view


def rejections(ctx: Context) -> View:
    import plotly.graph_objects as go

    view = View("rejections", "Rejections and their reasons", "Answers reviewed, rejected, and the reason given for each "
                "rejection (every rejection needs one the worker can read and appeal), with the pay reversed.")
    rej = queries.rejections(ctx.engine, ctx.scope)
    cur = ctx.currency
    rate = rej["rejected"] / rej["answers"] if rej["answers"] else None
    view.numbers += [
        Number("answers", "answers", rej["answers"], f"{rej['answers']:,}"),
        Number("reviewed", "reviewed", rej["reviewed"], f"{rej['reviewed']:,}"),
        Number("rejected", "rejected", rej["rejected"], f"{rej['rejected']:,}"),
        Number("rejection_rate", "rejected, share of answers", rate, fmt(100 * rate, 2, unit="%") if rate is not None else "-"),
        _reversed(rej["income_reversed"], cur),
    ]
    if not rej["reasons"]:
        view.empty = "No answer in scope was rejected." if rej["answers"] else "No answer in scope."
        return view
    reasons = rej["reasons"][::-1]
    fig = go.Figure(go.Bar(y=[r for r, _ in reasons], x=[n for _, n in reasons], orientation="h", marker_color=PALETTE[5],
                           text=[f"{n:,}" for _, n in reasons], textposition="outside", cliponaxis=False))
    view.figures.append(layout(fig, title="Rejections by reason", xaxis_title="rejected answers", showlegend=False,
                               height=max(240, 100 + 40 * len(reasons)), yaxis={"automargin": True}))
    view.tables.append(table("Rejections by reason", [("reason", "reason", None), ("count", "rejected", 0)],
                             [{"reason": r, "count": n} for r, n in rej["reasons"]]))
    return view
