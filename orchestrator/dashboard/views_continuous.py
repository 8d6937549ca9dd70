"""The view of waiting and staleness per loop: how long people waited for work (unpaid, caused by
the requester) against their active time, and, for loops in continuous mode, how many answers came
between the model version that chose a task and its answer. The figures are those of
``clicloop report`` (:func:`clicloop.orchestrator.ledger.continuous.summary`, one function for both)."""

from __future__ import annotations

from typing import Any

from clicloop.orchestrator.dashboard.base import PALETTE, Context, Number, View, fmt, layout, table
from clicloop.orchestrator.ledger import continuous as cl

STALENESS = (("staleness_mean", "mean"), ("staleness_median", "median"), ("staleness_max", "max"))


def rows(ctx: Context) -> list[dict[str, Any]]:
    """Per loop in scope, a deployment's review loop included (reviewers wait unpaid too): the
    report's waiting and staleness figures."""
    return [{"loop": i.name, **cl.summary(ctx.engine, i.name)} for i in ctx.loops]


def waiting_staleness(ctx: Context) -> View:
    import plotly.graph_objects as go

    view = View("staleness", "Waiting and staleness", "Hours people waited for work (unpaid: the requester had no task "
                "for them) and their share of active time; for loops in continuous mode, the staleness of their answers: "
                "answers recorded between the model version that chose a task and the task's answer. The figures of "
                "clicloop report, over each loop's whole run (the loop filter applies; backend, date and model-version "
                "filters do not).")
    per_loop = rows(ctx)
    if not per_loop:
        view.empty = "No loop in scope."
        return view
    for r in per_loop:
        share = r["waiting_share"]
        view.numbers.append(Number(f"waiting_hours:{r['loop']}", f"{r['loop']}: waiting", r["waiting_hours"],
                                   fmt(r["waiting_hours"], 2, unit="h")))
        view.numbers.append(Number(f"waiting_share:{r['loop']}", f"{r['loop']}: waiting, share of active time", share,
                                   fmt(100 * share, 2, unit="%") if share is not None else "-"))
        if r["staleness_mean"] is not None:
            for key, label in STALENESS[:2]:
                view.numbers.append(Number(f"{key}:{r['loop']}", f"{r['loop']}: staleness, {label} (answers)", r[key],
                                           fmt(r[key], 1)))
    loops = [r["loop"] for r in per_loop]
    fig = go.Figure(go.Bar(y=loops, x=[100 * (r["waiting_share"] or 0.0) for r in per_loop], orientation="h",
                           marker_color=PALETTE[1], text=[fmt(100 * r["waiting_share"], 2, unit="%") if r["waiting_share"] is not None
                                                          else "-" for r in per_loop], textposition="auto"))
    view.figures.append(layout(fig, title="Waiting, share of active time, per loop", xaxis_title="% of active time",
                               showlegend=False, height=max(240, 110 + 50 * len(loops)), yaxis={"automargin": True}))
    stale = [r for r in per_loop if r["staleness_mean"] is not None]
    if stale:
        fig = go.Figure()
        for (key, label), color in zip(STALENESS, PALETTE[2:]):
            fig.add_trace(go.Bar(y=[r["loop"] for r in stale], x=[r[key] for r in stale], name=label, orientation="h",
                                 marker_color=color, text=[fmt(r[key], 1) for r in stale], textposition="auto"))
        view.figures.append(layout(fig, title="Staleness per continuous loop (answers between choice and answer)",
                                   barmode="group", xaxis_title="answers", height=max(240, 130 + 70 * len(stale)),
                                   yaxis={"automargin": True}))
    view.tables.append(table("Waiting and staleness per loop", [
        ("loop", "loop", None), ("waiting_hours", "waiting (h)", 3), ("waiting_share", "waiting / active", 4),
        ("staleness_mean", "staleness, mean", 1), ("staleness_median", "staleness, median", 1),
        ("staleness_max", "staleness, max", 0)], per_loop,
        note="staleness: answers; '-' for a loop in rounds mode (its tasks are answered by the version that chose them)"))
    return view
