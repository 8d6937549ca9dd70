"""Views of what the model bought: the learning curve (labels, human hours, money) against the
random baseline, the forecast to the target, and the marginal cost of each point per round."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from clicloop.orchestrator.dashboard.base import FLOOR, Context, Number, View, fmt, layout, table
from clicloop.orchestrator.fairwork.wages import fair_cost
from clicloop.orchestrator.ledger import money
from clicloop.orchestrator.reporting.forecast import Forecast, default_target, forecast

AXES = (("n_labeled", "labels", "labels the model was trained on"), ("hours", "hours", "human hours (unpaid time included)"),
        ("cost", "money", "money spent ({cur}, fees included)"))


def targets(ctx: Context) -> dict[str, float]:
    """Per loop, the target its forecast aims at: ``?target=``, else the ``stop.target_metric`` of
    the loop's config (``clicloop dashboard --config``), else 2 points above the best metric in
    scope, rounded up to a whole point (capped at 0.99); the same rule as ``clicloop report`` (clicloop.orchestrator.reporting.forecast.default_target)."""
    best = max((r["metric"] for rows in ctx.curves.values() for r in rows if r["metric"] is not None), default=None)
    return {loop: ctx.target if ctx.target is not None else
            default_target(ctx.stops[loop].target_metric if loop in ctx.stops else None, best) for loop in ctx.curves}


def learning(ctx: Context) -> View:
    import plotly.graph_objects as go

    view = View("learning", "Learning curve", "The model's metric against the labels it was trained on, the human hours and "
                "the money spent before it; a random-sampling loop, when the ledger has one, is the grey dashed baseline.")
    curves = ctx.curves
    if not curves:
        view.empty = "No round in scope: run a loop (clicloop quickstart) or widen the filters."
        return view
    cur = ctx.currency
    for key, short, title in AXES:
        fig = go.Figure()
        for loop, rows in curves.items():
            pts = [r for r in rows if r["metric"] is not None]
            base = ctx.is_baseline(loop)
            fig.add_trace(go.Scatter(
                x=[float(r[key]) for r in pts], y=[r["metric"] for r in pts], name=loop + (" (baseline)" if base else ""),
                mode="lines+markers+text", line={"color": ctx.color(loop), "dash": "dash" if base else "solid", "width": 2},
                marker={"symbol": "circle-open" if base else "circle", "size": 6},
                text=[""] * (len(pts) - 1) + [f"{pts[-1]['metric']:.3f}"] if pts else [], textposition="top left",
                hovertemplate=f"%{{x:,.2f}} {short}<br>metric %{{y:.4f}}<extra>{loop}</extra>"))
        layout(fig, title=f"{_metric_name(ctx)} vs {title.format(cur=cur)}", xaxis_title=title.format(cur=cur),
               yaxis_title=_metric_name(ctx))
        view.figures.append(fig)
    summary = []
    for loop, rows in curves.items():
        last = next((r for r in reversed(rows) if r["metric"] is not None), rows[-1])
        spent = rows[-1]["hours"] + rows[-1]["bought_hours"], rows[-1]["cost"] + rows[-1]["bought_cost"]
        unknown = loop in ctx.pay_unknown
        adjusted = sum((r["adjustment"] for r in rows), money.ZERO)
        fair = None if unknown else fair_cost(spent[1], adjusted, ctx.owed.get(loop, money.ZERO))
        summary.append({"loop": loop, "currency": ctx.currency_of(loop),
                        "strategy": next((i.strategy for i in ctx.all_loops if i.name == loop), "?"),
                        "rounds": len(rows), "n_labeled": last["n_labeled"], "metric": last["metric"], "hours": spent[0],
                        "cost": "pay unknown" if unknown else spent[1], "adjustment": "pay unknown" if unknown else adjusted,
                        "owed": "pay unknown" if unknown else ctx.owed.get(loop, money.ZERO),
                        "fair_cost": "pay unknown" if unknown else fair})
        view.numbers.append(Number(f"final_metric:{loop}", f"{loop}: latest {_metric_name(ctx)}", last["metric"], fmt(last["metric"], 4)))
        view.numbers.append(Number(f"fair_cost:{loop}", f"{loop}: fair cost (planned + back-pay + owed)", fair,
                                   "pay unknown" if unknown else money.fmt(fair, ctx.currency_of(loop))))
    view.tables.append(table("Each loop's latest model and everything spent so far", ctx.money_columns([
        ("loop", "loop", None), ("strategy", "strategy", None), ("rounds", "rounds", 0), ("n_labeled", "labels", 0),
        ("metric", _metric_name(ctx), 4), ("hours", "human hours", 2), ("cost", "planned cost {cur}", 2),
        ("adjustment", "back-pay booked {cur}", 2), ("owed", "owed {cur}", 2), ("fair_cost", "fair cost {cur}", 2)]), summary,
        note="Planned cost: rewards, bonuses and fees as the loop priced them; back-pay (ledger adjust) is its own column; "
             "owed: what lifting every worker below the floor would still cost (per worker in the wages view); fair cost = "
             "planned cost + back-pay + owed; docs/ledger.md defines every number."))
    view.numbers.extend(_versus_baseline(ctx))
    return view


def _metric_name(ctx: Context) -> str:
    names = {r["metric_name"] for rows in ctx.curves.values() for r in rows}
    return names.pop() if len(names) == 1 else "metric"


def reach_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A loop's curve rows as :func:`clicloop.orchestrator.reporting.reach.reach` reads them: what
    each round bought after its model (answers, hours, planned cost)."""
    return [{"round_no": r["round_no"], "n_labeled": r["n_labeled"], "metric": r["metric"], "answers": r["answers"],
             "total_hours": r["bought_hours"], "cost": r["bought_cost"], "n_eval": r.get("n_eval")} for r in rows]


def _versus_baseline(ctx: Context) -> list[Number]:
    """For each loop: what it spent to first reach the random baseline's latest metric (the one
    "labels to reach" definition, clicloop.orchestrator.reporting.reach)."""
    from clicloop.orchestrator.reporting.reach import reach

    bases = [lp for lp in ctx.curves if ctx.is_baseline(lp)]
    out = []
    for base in bases:
        ref = next((r for r in reversed(ctx.curves[base]) if r["metric"] is not None), None)
        if ref is None:
            continue
        own = reach(reach_rows(ctx.curves[base]), ref["metric"])
        for loop, rows in ctx.curves.items():
            if ctx.is_baseline(loop):
                continue
            hit = reach(reach_rows(rows), ref["metric"])
            text = (f"{hit.labels} labels bought, {hit.hours:.2f} h, {money.fmt(hit.cost, ctx.currency_of(loop))} "
                    f"(baseline: {own.labels} labels, {own.hours:.2f} h, {money.fmt(own.cost, ctx.currency_of(base))})"
                    if hit.round_no is not None else "not reached yet")
            out.append(Number(f"versus:{loop}:{base}", f"{loop} to reach {base}'s {ref['metric']:.3f}", hit.labels, text))
    return out


@lru_cache(maxsize=256)
def _cached_forecast(points: tuple[tuple[float, float | None, float, float], ...], target: float) -> Forecast:
    rows = [{"n_labeled": n, "metric": m, "total_hours": h, "cost": c} for n, m, h, c in points]
    return forecast(rows, target)


def loop_forecast(ctx: Context, loop: str, target: float) -> Forecast:
    """The forecast for one loop of the context (cached on the rounds' figures: same rounds, same forecast)."""
    pts = tuple((float(r["n_labeled"]), r["metric"], float(r["bought_hours"]), float(r["bought_cost"])) for r in ctx.curves[loop])
    return _cached_forecast(pts, float(target))


def forecast_view(ctx: Context) -> View:
    import numpy as np
    import plotly.graph_objects as go

    view = View("forecast", "Forecast to target", f"Labels, human hours and money still needed until a round's measured "
                f"{_metric_name(ctx)} first reaches the target: a learning curve a - b·n^-c fitted to each loop's rounds so far "
                "(refitted every round), bootstrapped and rolled forward with the measurement noise; median and 80% interval. "
                "The target is ?target=, else the stop.target_metric of the loop's config (clicloop dashboard --config), else the "
                "best metric in scope rounded up to a whole point, plus 2 points. With stop.forecast in its config a loop stops once even the "
                "optimistic end is over its budget.")
    if not ctx.curves:
        view.empty = "No round in scope: nothing to forecast."
        return view
    aims = targets(ctx)
    fig, rows = go.Figure(), []
    for loop, curve in ctx.curves.items():
        target = aims[loop]
        fc = loop_forecast(ctx, loop, target)
        cur = ctx.currency_of(loop)
        pts = [r for r in curve if r["metric"] is not None]
        stop = ctx.stops.get(loop)
        spent_h = sum(r["bought_hours"] for r in curve)
        spent_c = sum((r["bought_cost"] for r in curve), money.ZERO)
        hours_left = max(0.0, stop.max_hours - spent_h) if stop and stop.max_hours is not None and not _filtered(ctx) else None
        cost_left = (max(money.ZERO, money.exact(stop.max_cost) - spent_c) if stop and stop.max_cost is not None and not _filtered(ctx)
                     else None)
        budget = " / ".join(x for x in (fmt(hours_left, 2, unit="h") if hours_left is not None else "",
                                        fmt(cost_left, 2, unit=cur) if cost_left is not None else "") if x) or "-"
        rows.append({"loop": loop, "currency": cur, "target": target, "status": fc.status, "labels": _interval(fc.labels_to_target, 0),
                     "hours": _interval(fc.hours_to_target, 2), "cost": _interval(fc.cost_to_target, 2), "budget": budget,
                     "beyond": ("over budget" if fc.beyond(hours_left=hours_left, cost_left=cost_left) else "within")
                     if budget != "-" else "-", "message": fc.message})
        view.numbers.append(Number(f"target:{loop}", f"{loop}: target", target, f"{target:.4f}"))
        view.numbers.append(Number(f"forecast_hours:{loop}", f"{loop}: human hours to target",
                                   fc.hours_to_target.point if fc.hours_to_target else None,
                                   _interval(fc.hours_to_target, 2, unit="h") if fc.hours_to_target else fc.status))
        view.numbers.append(Number(f"forecast_cost:{loop}", f"{loop}: money to target",
                                   money.estimate(fc.cost_to_target.point) if fc.cost_to_target else None,
                                   _interval(fc.cost_to_target, 2, unit=cur) if fc.cost_to_target else fc.status))
        fig.add_trace(go.Scatter(x=[r["n_labeled"] for r in pts], y=[r["metric"] for r in pts], mode="markers", name=loop,
                                 marker={"color": ctx.color(loop), "size": 7}))
        if fc.params is not None and pts:
            end = fc.labels_now + (fc.labels_to_target.point if fc.labels_to_target and math.isfinite(fc.labels_to_target.point)
                                   else fc.labels_now)
            xs = np.linspace(max(1.0, pts[0]["n_labeled"]), max(end * 1.1, fc.labels_now * 1.5), 80)
            fig.add_trace(go.Scatter(x=xs, y=fc.predict(xs), mode="lines", name=f"{loop} fitted ({fc.model})",
                                     line={"color": ctx.color(loop), "dash": "dot"}, hoverinfo="skip"))
        lab = fc.labels_to_target
        if fc.status == "forecast" and lab is not None:  # where a round's measured metric first reaches the target
            hi = lab.high if math.isfinite(lab.high) else 3 * lab.point  # an open end, drawn as a long bar
            fig.add_trace(go.Scatter(
                x=[fc.labels_now + lab.point], y=[target], mode="markers", name=f"{loop}: target reached (80% interval)",
                marker={"color": ctx.color(loop), "symbol": "diamond", "size": 11, "line": {"width": 1, "color": "#000"}},
                error_x={"type": "data", "symmetric": False, "array": [hi - lab.point], "arrayminus": [lab.point - lab.low],
                         "color": ctx.color(loop), "thickness": 2},
                hovertemplate=f"{loop}: about %{{x:,.0f}} labels<extra></extra>"))
    for target in sorted(set(aims.values())):
        fig.add_hline(y=target, line={"color": FLOOR, "dash": "dash"}, annotation_text=f"target {target:.3f}",
                      annotation_position="bottom right")
    view.figures.append(layout(fig, title="Fitted learning curves and the target", xaxis_title="labels",
                               yaxis_title=_metric_name(ctx)))
    view.tables.append(table("Still needed to reach the target (point, and 80% interval)", ctx.money_columns([
        ("loop", "loop", None), ("target", "target", 4), ("status", "status", None), ("labels", "more labels", None),
        ("hours", "human hours", None), ("cost", "cost {cur}", None), ("budget", "budget left", None),
        ("beyond", "forecast vs budget", None), ("message", "how", None)]), rows,
        note="Budget left: stop.max_hours / stop.max_cost of the loop's config (clicloop dashboard --config) minus what it "
             "spent; not shown without a config, nor under backend, model-version or date filters (they cover part of the spending)."))
    return view


def _interval_note(rows: list[dict[str, Any]]) -> str:
    """How the labels' interval was drawn, with the evaluation set's size (the ledger's ``eval_sizes``)."""
    sizes = sorted({r["n_eval"] for r in rows if r.get("n_eval")})
    if not sizes:
        return "No labels interval: the ledger does not record this loop's evaluation-set size (a ledger from before 0007)."
    return (f"Labels interval: the first rounds whose metric's optimistic and conservative 80% bounds reach the target, from "
            f"the sampling error of an accuracy on {'/'.join(str(n) for n in sizes)} evaluation items; 10+ means the "
            "conservative bound has not reached it yet.")


def _next_point(loop: str, m: Any, cur: str, unknown: bool) -> list[Number]:
    """The next point's labels and cost from the fitted curve (``Forecast.marginal``), as key numbers."""
    if m is None or not math.isfinite(m.labels):
        why = "no fit yet" if m is None else f"beyond the fitted plateau ({m.plateau:.4f})"
        return [Number(f"marginal_labels:{loop}", f"{loop}: labels for the next point (fitted curve)", None, why),
                Number(f"marginal_cost:{loop}", f"{loop}: cost of the next point (fitted curve)", None,
                       "pay unknown" if unknown else why)]
    cost = None if unknown else money.estimate(m.cost)
    return [Number(f"marginal_labels:{loop}", f"{loop}: labels for the next point (fitted curve)", m.labels, fmt(m.labels, 0)),
            Number(f"marginal_cost:{loop}", f"{loop}: cost of the next point (fitted curve)", cost,
                   "pay unknown" if unknown else money.fmt(cost, cur))]


def _filtered(ctx: Context) -> bool:
    """Filters that cover only part of a loop's spending (the budget left would be wrong)."""
    f = ctx.filters
    return any((f.backend, f.model_version, f.date_from, f.date_to))


def _interval(iv: Any, digits: int, unit: str = "") -> str:
    if iv is None:
        return "-"
    if math.isinf(iv.point) and math.isinf(iv.low):
        return f"∞ {unit}".rstrip()
    return f"{fmt(iv.point, digits)} ({fmt(iv.low, digits)}–{fmt(iv.high, digits)}) {unit}".rstrip()


def marginal(ctx: Context) -> View:
    import plotly.graph_objects as go

    from clicloop.orchestrator.reporting.reach import default_targets, reach_table
    from clicloop.orchestrator.reporting.report import labels_interval

    cur = ctx.currency
    view = View("marginal", "Cost to reach, and the next point", "What reaching each metric took: the labels bought (human "
                "answers before the first round that measured it; seed labels not counted), their human hours and planned "
                "cost; and what the NEXT point (0.01 of the metric) costs from the fitted learning curve, so rounds without a "
                "measured gain count. Back-pay is not a round's price: it is its own line in the wages view. The per-round "
                "figures below are noisy (one evaluation item can be worth a point); docs/ledger.md defines every number.")
    if not ctx.curves:
        view.empty = "No round in scope."
        return view
    aims = targets(ctx)
    figs = {k: go.Figure() for k in ("cost_per_point", "hours_per_point")}
    for loop, rows in ctx.curves.items():
        unknown = loop in ctx.pay_unknown
        configured = ctx.stops[loop].target_metric if loop in ctx.stops else None
        reached = [{"target": x.target, "round_no": x.round_no, "labels": x.labels, "labels_low": x.labels_low,
                    "labels_high": x.labels_high, "labels_interval": labels_interval(x), "hours": x.hours,
                    "cost": "pay unknown" if unknown and x.round_no is not None else x.cost}
                   for x in reach_table(reach_rows(rows), default_targets(rows, configured))]
        view.tables.append(table(f"{loop}: cost to reach", [
            ("target", "target", 4), ("round_no", "first round at or above it", 0), ("labels", "labels bought", 0),
            ("labels_interval", "labels, 80% interval", None), ("hours", "human hours", 3),
            ("cost", f"planned cost {ctx.currency_of(loop)}", 2)], reached, note=_interval_note(rows)))
        view.numbers += _next_point(loop, loop_forecast(ctx, loop, aims[loop]).marginal(), ctx.currency_of(loop), unknown)
        for key, fig in figs.items():
            fig.add_trace(go.Scatter(x=[r["round_no"] for r in rows], y=[None if r[key] is None else float(r[key]) for r in rows],
                                     name=loop, mode="lines+markers", connectgaps=False,
                                     line={"color": ctx.color(loop), "dash": "dash" if ctx.is_baseline(loop) else "solid"}))
        own = ctx.currency_of(loop)
        view.tables.append(table(f"{loop}: per round", [
            ("round_no", "round", 0), ("n_labeled", "labels", 0), ("metric", "metric", 4), ("gain", "gain", 4),
            ("answers", "answers bought", 0), ("bought_hours", "hours bought", 3), ("bought_cost", f"planned cost bought {own}", 2),
            ("adjustment", f"back-pay booked {own}", 2), ("hours_per_point", "h/point", 3), ("cost_per_point", f"{own}/point", 2)],
            rows))
    view.figures.append(layout(figs["cost_per_point"], title=f"Cost per point ({cur}), per round", xaxis_title="round",
                               yaxis_title=f"{cur} per point", yaxis_type="log"))
    view.figures.append(layout(figs["hours_per_point"], title="Human hours per point, per round", xaxis_title="round",
                               yaxis_title="hours per point", yaxis_type="log"))
    return view
