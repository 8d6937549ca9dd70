"""The labor card of each model version: the human work behind it (``clicloop.orchestrator.reporting.laborcard``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from clicloop.orchestrator.dashboard import queries
from clicloop.orchestrator.dashboard.base import PALETTE, Context, Number, Table, View, fmt, layout, table
from clicloop.orchestrator.dashboard.views_people import UNPAID_KINDS
from clicloop.orchestrator.dashboard.source import Filters, ReadOnlyLedger

MAX_CARDS = 4  # full cards shown at once (the latest version of each loop, or the one filtered on)


def labor_cards(ctx: Context) -> View:
    from clicloop.orchestrator.reporting.laborcard import labor_card

    view = View("laborcards", "Labor cards", "Every model version with the human work behind it (labels, hours, money "
                "spent before it); below, the full labor card of the latest version of each loop, or of the version "
                "chosen in the filters. A card counts all the work before its version, whatever the backend and dates filters.")
    latest: dict[str, str] = {}
    for r in ctx.rounds:  # rounds are cheap; the per-round effort behind ctx.curves is a scan
        latest[r["loop"]] = r["model_version"]
    version = ctx.filters.model_version
    if not latest and version is None:
        view.empty = "No model version in scope."
        return view
    chosen = [version] if version is not None else list(latest.values())[:MAX_CARDS]  # a deployed version has a card too
    ledger = ReadOnlyLedger(str(ctx.engine.url))
    ledger.engine_ = ctx.engine
    rounds = {r["model_version"]: r for r in ctx.rounds}
    cards_done = [version_card(ctx, ledger, rounds[v]) if v in rounds else labor_card(ledger, v, ctx.floor) for v in chosen]
    carded = {c["model_version"]: c for c in cards_done}
    versions = [{**r, "currency": ctx.currency_of(r["loop"]),
                 "hours": carded[r["model_version"]]["hours"]["total"] if r["model_version"] in carded else None,
                 "cost": carded[r["model_version"]]["money"].get("total_cost", "pay unknown") if r["model_version"] in carded else None}
                for r in ctx.rounds]
    view.tables.append(table("Model versions", ctx.money_columns([
        ("loop", "loop", None), ("model_version", "model version", None), ("metric", "metric", 4), ("n_labeled", "labels", 0),
        ("hours", "human hours before it", 2), ("cost", "cost before it {cur}", 2)]), versions,
        note="Hours and cost are shown for the versions with a full card below; the learning-curve and marginal-cost "
             "views give them for every round."))
    view.figures.append(_hours_figure(cards_done))
    for card in cards_done:
        version = card["model_version"]
        view.tables.append(_card_table(card))
        view.numbers.append(Number(f"card_people:{version}", f"{version}: people", card["people"], str(card["people"])))
        view.numbers.append(Number(f"card_hours:{version}", f"{version}: human hours", card["hours"]["total"],
                                   fmt(card["hours"]["total"], 2, unit="h")))
        cost = card["money"].get("total_cost")  # none where pay is unknown
        view.numbers.append(Number(f"card_cost:{version}", f"{version}: total cost", cost,
                                   "pay unknown" if cost is None else fmt(cost, 2, unit=card["money"]["currency"])))
    return view


def version_card(ctx: Context, ledger: ReadOnlyLedger, row: dict[str, Any]) -> dict[str, Any]:
    """The labor card of a labeling loop's model version, as ``clicloop.orchestrator.reporting.laborcard.labor_card``
    writes it (a test checks they agree), from one pass of the dashboard's per-worker query: the
    card's totals are the sums of its workers' figures, so the ledger is scanned once, not twice."""
    from clicloop.orchestrator.ledger.money import ZERO
    from clicloop.orchestrator.reporting.laborcard import _count, _rejections, loop_settings, people_money
    from clicloop.orchestrator.ledger import schema as s

    loop, before = row["loop"], int(row["round_no"])
    scope = queries.Scope(Filters(loop=loop), (loop,), before, None, None)  # all the work before it, whatever the filters
    workers = queries.wages(ctx.engine, scope)
    unpaid = queries.unpaid_by_loop_kind(ctx.engine, scope).get(loop, {})
    active = sum(w["active_hours"] for w in workers)
    total = sum(w["total_hours"] for w in workers)
    income = sum((w["income"] for w in workers), ZERO)  # exact: Decimal sums of whole micro-units
    fees = sum((w["fees"] for w in workers), ZERO)
    currency = ledger.currency(loop) or ctx.floor.currency
    with ctx.engine.connect() as conn:
        config = conn.execute(select(s.loops.c.config_json).where(s.loops.c.name == loop)).scalar()
    purpose, pseudo = loop_settings(config)
    return {
        "model_version": row["model_version"], "loop": loop, "purpose": purpose,
        "metric": {"name": row["metric_name"], "value": row["metric"]},
        "labels": {"trained_on": row["n_labeled"], "bought_answers": sum(w["answers"] for w in workers)},
        "pseudo_labels": pseudo,
        "people": len({(w["backend"], w["worker"]) for w in workers}), "backends": sorted({w["backend"] for w in workers}),
        "hours": {"active": active, "total": total, "unpaid": total - active,
                  "unpaid_by_kind": {k: unpaid.get(k, 0.0) for k, _ in UNPAID_KINDS}},
        **people_money(ledger, loop, before, workers, ctx.floor, currency, income, fees),
        "rejections": _rejections(ledger, loop, before),
        "corrections": _count(ledger, s.corrections, loop),
    }


def _hours_figure(cards: list[dict[str, Any]]) -> Any:
    """The hours behind each carded version, paid and unpaid by kind, side by side."""
    import plotly.graph_objects as go

    names = [c["model_version"] for c in cards]
    fig = go.Figure()
    parts = [("paid (on tasks)", lambda c: c["hours"]["active"], PALETTE[0])] + [
        (label, (lambda c, k=kind: c["hours"]["unpaid_by_kind"].get(k, 0.0)), color)
        for (kind, label), color in zip(UNPAID_KINDS, PALETTE[1:])]
    for label, get, color in parts:
        vals = [float(get(c)) for c in cards]
        fig.add_trace(go.Bar(y=names, x=vals, name=label, orientation="h", marker_color=color,
                             text=[fmt(v, 2) if v > 0 else "" for v in vals], textposition="inside", insidetextanchor="middle"))
    for c in cards:  # the total, readable without hovering
        fig.add_annotation(y=c["model_version"], x=c["hours"]["total"], text=f"{c['hours']['total']:.2f} h", showarrow=False,
                           xanchor="left", xshift=4)
    return layout(fig, title="Human hours behind each version (paid and unpaid)", barmode="stack", xaxis_title="hours",
                  height=max(240, 120 + 60 * len(cards)), yaxis={"automargin": True})


def _money_rows(m: dict[str, Any]) -> list[dict[str, Any]]:
    """The card's money, exact amounts rounded to the cent here."""
    cur = m["currency"]
    return [
        {"field": "paid to workers", "value": fmt(m["paid_to_workers"], 2, unit=cur)},
        {"field": "of which retroactive (back-pay)", "value": fmt(m["retroactive"], 2, unit=cur) + f" ({m['retroactive_share']:.0%})"},
        {"field": "owed below the floor", "value": fmt(m["owed"], 2, unit=cur)},
        {"field": "fees and taxes", "value": fmt(m["fees_and_taxes"], 2, unit=cur)},
        {"field": "total cost", "value": fmt(m["total_cost"], 2, unit=cur)},
        {"field": "fair cost (planned + back-pay + owed)", "value": fmt(m.get("fair_cost"), 2, unit=cur)},
    ]


def _card_table(card: dict[str, Any]) -> Table:
    from clicloop.orchestrator.reporting.laborcard import floor_text, pseudo_labels_text

    h, m, w, rej = card["hours"], card["money"], card["wages_total_time"], card["rejections"]
    cur = m["currency"]
    rows: list[dict[str, Any]] = [
        {"field": "purpose shown to workers", "value": card["purpose"] or "(none recorded)"},
        {"field": f"{card['metric']['name']}", "value": fmt(card["metric"]["value"], 4)},
        {"field": "labels trained on", "value": str(card["labels"]["trained_on"])},
        {"field": "answers bought", "value": str(card["labels"]["bought_answers"])},
        *([{"field": "also trained on pseudo-labels", "value": f"{pseudo_labels_text(card['pseudo_labels'])} "
            "(machine-made, no human time)"}] if card.get("pseudo_labels") else []),
        {"field": "people", "value": f"{card['people']} ({', '.join(card['backends']) or '-'})"},
        {"field": "hours in all", "value": fmt(h["total"], 3, unit="h")},
        {"field": "hours on tasks (paid)", "value": fmt(h["active"], 3, unit="h")},
        {"field": "hours unpaid", "value": fmt(h["unpaid"], 3, unit="h") + " (" + ", ".join(
            f"{k} {v:.3f}" for k, v in h["unpaid_by_kind"].items()) + ")"},
        *(_money_rows(m) if not m.get("pay_unknown") else [{"field": "pay", "value": "pay unknown (no payment recorded)"}]),
    ]
    if w.get("workers"):
        rows.append({"field": "wage on total time", "value": f"median {w['median']:.2f}, p10 {w['p10']:.2f}, lowest {w['min']:.2f} "
                     f"{w['currency']}/h; {floor_text(w)}"})
    rows.append({"field": "rejections", "value": f"{rej['count']}" + "".join(f"; {n} × {r}" for r, n in rej["reasons"].items())})
    rows.append({"field": "corrections", "value": str(card["corrections"])})
    return table(f"Labor card: {card['model_version']}", [("field", "", None), ("value", "", None)], rows)
