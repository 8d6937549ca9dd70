"""The labor card: the human work behind one model version, to ship beside its model card.

How many people, how many hours (paid and unpaid), what they were paid and what the platforms
took, the distribution of effective wages against the floor, rejections and their reasons,
and corrections.

A version a deployment serves (``clicloop deploy``) also gets its post-deployment figures: the
review work and corrections behind it, and the audited error rate of the traffic it served. A
version retrained from production corrections (not a labeling loop's round) gets a card of the
review work that produced those corrections.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from decimal import Decimal

from sqlalchemy import func, select

from clicloop.orchestrator.config import WageFloor
from clicloop.orchestrator.fairwork.currency import held_to, pay_currencies
from clicloop.orchestrator.errors import LedgerError
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.reporting.markdown import md_text
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.fairwork.wages import fair_cost, owed_amount, pay_unknown
from clicloop.orchestrator.ledger.accounting import by_worker, unpaid_by_kind
from clicloop.orchestrator.ledger.money import ZERO, exact, fmt, from_micros, percentile


def model_versions(ledger: Ledger, loop: str | None = None) -> list[str]:
    """The model versions of finished rounds, newest first (review loops left out)."""
    r = s.rounds.c
    query = select(r.model_version).where(r.status == "finished", r.loop.not_like("%:review"))
    if loop is not None:
        query = query.where(r.loop == loop)
    with ledger.engine_.connect() as conn:
        rows = conn.execute(query.order_by(r.recorded_at.desc(), r.round_no.desc())).scalars().all()
    return list(dict.fromkeys(rows))


def latest_model_version(ledger: Ledger, loop: str | None = None) -> str:
    """The model version of the latest finished round (of ``loop``, or of any loop)."""
    known = model_versions(ledger, loop)
    if not known:
        where = f"loop {loop!r}" if loop else "the ledger"
        raise LedgerError(f"{where} has no finished round yet, so no model version to describe; run the loop first")
    return known[0]


def labor_card(ledger: Ledger, model_version: str, floor: WageFloor | None = None,
               loop: str | None = None) -> dict[str, Any]:
    """The labor card of ``model_version`` as a JSON-ready dict; an unknown version's error lists
    the versions of ``loop`` (the config's), or of the whole ledger without one."""
    from clicloop.orchestrator.postdeploy.card import deployed_card_base, post_deployment

    r = s.rounds.c
    with ledger.engine_.connect() as conn:  # a review loop's rounds carry the serving version: skip them
        row = conn.execute(select(s.rounds).where(r.model_version == model_version, r.loop.not_like("%:review"))
                           .order_by(r.round_no, r.loop).limit(1)).first()
        loop_row = conn.execute(select(s.loops.c.config_json).where(s.loops.c.name == row.loop)).first() if row else None
    if row is None:
        base = deployed_card_base(ledger, model_version)
        if base is None:
            known = model_versions(ledger, loop)
            listed = ", ".join(known[:12]) + (f" and {len(known) - 12} more" if len(known) > 12 else "")
            raise LedgerError(f"no model version {model_version!r} in the ledger; "
                              + (f"the latest{f' of loop {loop!r}' if loop else ''} are: {listed}" if known
                                 else f"loop {loop!r} has no finished round yet" if loop
                                 else "it holds no finished round yet")
                              + " (clicloop report lists them per round)")
        loop, before, metric, n_labeled, purpose = base
        pseudo = None
    else:
        loop, before, n_labeled = row.loop, first_round_not_counted(row.round_no, row.stop_reason), row.n_labeled
        metric = {"name": row.metric_name, "value": row.metric}
        purpose, pseudo = loop_settings(loop_row.config_json if loop_row else None)
    floor = floor or WageFloor()
    workers = by_worker(ledger.engine_, loop, before_round=before)
    totals = _totals(workers)
    currency = ledger.currency(loop) or floor.currency
    return {
        "model_version": model_version, "loop": loop, "purpose": purpose,
        "metric": metric,
        "labels": {"trained_on": n_labeled, "bought_answers": totals["answers"]},
        "pseudo_labels": pseudo,  # machine-made training labels (loop.pseudo_labels), or None
        "people": len({(w["backend"], w["worker"]) for w in workers}),
        "backends": sorted({w["backend"] for w in workers}),
        "hours": {"active": totals["active_hours"], "total": totals["total_hours"],
                  "unpaid": totals["total_hours"] - totals["active_hours"],
                  "unpaid_by_kind": unpaid_by_kind(ledger.engine_, loop, before_round=before)},
        **people_money(ledger, loop, before, workers, floor, currency, totals["income"], totals["fees"]),
        "rejections": _rejections(ledger, loop, before),
        "corrections": _count(ledger, s.corrections, loop),
        "post_deployment_corrections": post_deployment(ledger, model_version),
    }


def first_round_not_counted(round_no: int, stop_reason: str | None) -> int:
    """The first round a version's card (and the dashboard filtered to it) does not count: the
    version's own round, whose answers it did not train on; but the round a loop stopped in buys
    nothing, and the waiting after the last answers and back-pay are booked on it, so the version
    the loop stopped with counts it (it left them out: 0.700 h against the report's 0.748 h)."""
    return round_no + (stop_reason is not None)


def loop_settings(config_json: str | None) -> tuple[str | None, dict[str, Any] | None]:
    """``(purpose, pseudo_labels settings)`` from a loop's recorded config; ``None`` for what is
    missing or unreadable."""
    try:
        section = (json.loads(config_json) or {}).get("loop", {}) if config_json else {}
        return section.get("purpose"), section.get("pseudo_labels")
    except (json.JSONDecodeError, AttributeError):
        return None, None


def _totals(workers: list[dict[str, Any]]) -> dict[str, Any]:
    """``accounting.spent`` over the same rounds, summed from the per-worker rows (one query less:
    the per-worker groups partition the loop's answers, payments and qualification time)."""
    active = sum(w["active_hours"] for w in workers)
    return {"answers": sum(w["answers"] for w in workers), "income": sum((w["income"] for w in workers), ZERO),
            "fees": sum((w["fees"] for w in workers), ZERO),
            "active_hours": active, "total_hours": active + sum(w["unpaid_hours"] for w in workers)}


def money_section(currency: str, income: Decimal, fees: Decimal, adjusted: Decimal, owed: Decimal | None) -> dict[str, Any]:
    """The card's money, exact: ``paid_to_workers`` includes ``retroactive`` (back-pay booked by
    ``ledger adjust``, its own line: ``planned_pay`` is what the loop priced); ``owed`` is what the
    workers below the floor are still due (None where pay is unknown); ``fair_cost`` is planned
    cost + back-pay + owed (``fairwork.wages.fair_cost``, as the report and the dashboard)."""
    return {"currency": currency, "paid_to_workers": income, "planned_pay": income - adjusted, "retroactive": adjusted,
            "retroactive_share": float(adjusted / income) if income > 0 else 0.0, "fees_and_taxes": fees,
            "total_cost": income + fees, "planned_cost": income - adjusted + fees, "owed": owed,
            "fair_cost": fair_cost(income - adjusted + fees, adjusted, owed)}


def adjustments(ledger: Ledger, loop: str, before: int | None) -> Decimal:
    """Back-pay (adjustment payments) booked on ``loop`` in rounds before ``before``."""
    p = s.payments.c
    where = [p.loop == loop, p.kind == "adjustment"] + ([p.round_no < before] if before is not None else [])
    with ledger.engine_.connect() as conn:
        return from_micros(conn.execute(select(func.coalesce(func.sum(p.amount_micros), 0)).where(*where)).scalar_one())


def people_money(ledger: Ledger, loop: str, before: int | None, workers: list[dict[str, Any]], floor: WageFloor,
                 currency: str, income: Decimal, fees: Decimal) -> dict[str, Any]:
    """The card's ``money`` and ``wages_total_time`` sections from the per-worker rows of the work
    before round ``before`` (the labor card and the dashboard's card share it): pay unknown, or
    money, what is still owed and the wages against the floor each backend's pay is held to."""
    if pay_unknown(ledger, loop):
        return {"money": {"currency": None, "pay_unknown": True}, "wages_total_time": {"workers": 0, "pay_unknown": True}}
    currencies = pay_currencies(ledger.engine_, loop)
    paid = [w for w in workers if w["wage_total_time"] is not None]
    floors = [held_to(floor, w["backend"], currencies.get((loop, w["backend"]))) for w in paid]
    return {"money": money_section(currency, income, fees, adjustments(ledger, loop, before),
                                   owed_before(workers, floor, currencies, loop, paid_since(ledger, loop, before))),
            "wages_total_time": _distribution([w["wage_total_time"] for w in paid], floors, currency)}


def floor_text(w: dict[str, Any]) -> str:
    """A card's wages against the floor, in words."""
    if w.get("below_floor") is None:
        return "the wage floor is in another currency than the pay: not compared"
    return f"{w['below_floor']} of {w['workers']} worker(s) below the {w['floor']:.2f} floor"


def owed_before(workers: list[dict[str, Any]], floor: WageFloor, currencies: dict[tuple[str, str], str], loop: str,
                later: dict[tuple[str, str], Decimal] | None = None) -> Decimal | None:
    """What lifting each worker below the floor (on total time) would still cost: ``fairwork.wages``'s
    rule on the work in ``workers``, less what each was paid in back-pay booked after it (``later``,
    per backend and worker: a debt of this work, paid since); None where a backend's floor is in
    another currency than its pay (not compared)."""
    rows = [{**w, "floor": held_to(floor, w["backend"], currencies.get((loop, w["backend"])))} for w in workers]
    if any(r["floor"] is None for r in rows):
        return None
    later = later or {}
    return sum((max(ZERO, owed_amount(r) - later.get((r["backend"], r["worker"]), ZERO)) for r in rows
                if r["wage_total_time"] is not None and r["wage_total_time"] < r["floor"]), ZERO)


def paid_since(source: Any, loop: str, before: int | None) -> dict[tuple[str, str], Decimal]:
    """Back-pay booked on ``loop`` in round ``before`` or later, per backend and worker (none when
    ``before`` is None: the card covers every round); ``source`` a Ledger or its engine."""
    if before is None:
        return {}
    p = s.payments.c
    with getattr(source, "engine_", source).connect() as conn:
        rows = conn.execute(select(p.backend, p.worker, func.sum(p.amount_micros))
                            .where(p.loop == loop, p.kind == "adjustment", p.round_no >= before)
                            .group_by(p.backend, p.worker)).all()
    return {(b, w): from_micros(m) for b, w, m in rows}


def _distribution(wages: list[Decimal], floors: list[Decimal | None], currency: str) -> dict[str, Any]:
    """Effective wages on total time (exact Decimals, in ``currency``: the pay's), their percentiles
    and the share below the floor (None where a floor is in another currency: not compared)."""
    if not wages:
        return {"workers": 0}
    q = [percentile(wages, x) for x in (0, 10, 50, 90, 100)]
    out = {"workers": len(wages), "currency": currency, "min": q[0], "p10": q[1], "median": q[2], "p90": q[3], "max": q[4]}
    if any(f is None for f in floors):
        return {**out, "below_floor": None, "share_below_floor": None, "floor": None}
    below = sum(w < f for w, f in zip(wages, floors))
    return {**out, "below_floor": int(below), "share_below_floor": below / len(wages), "floor": max(floors)}


def _rejections(ledger: Ledger, loop: str, before: int) -> dict[str, Any]:
    a, rv = s.assignments.c, s.reviews.c
    with ledger.engine_.connect() as conn:
        reasons = conn.execute(select(rv.reason).join(s.assignments, a.task_key == rv.task_key)
                               .where(rv.loop == loop, rv.decision == "reject", a.round_no < before)).scalars().all()
    return {"count": len(reasons), "reasons": dict(Counter(reasons).most_common())}


def _count(ledger: Ledger, table: Any, loop: str) -> int:
    with ledger.engine_.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(table.c.loop == loop)).scalar_one())


def render_markdown(card: dict[str, Any]) -> str:
    """The card as Markdown, for a model repository."""
    h, m, w = card["hours"], card["money"], card["wages_total_time"]
    cur = m["currency"]
    lines = [
        f"# Labor card: {md_text(card['model_version'])}",
        "",
        f"*Purpose shown to every worker:* {md_text(card['purpose']) if card['purpose'] else '(none recorded)'}",
        "",
        f"- Model: {card['metric']['name']} {_f(card['metric']['value'], 4)}, trained on {card['labels']['trained_on']} labels "
        f"({card['labels']['bought_answers']} human answers bought through clicloop{_review_share(card)})",
        *_pseudo_line(card.get("pseudo_labels")),
        f"- People: {card['people']} (backends: {', '.join(map(md_text, card['backends'])) or '-'})",
        f"- Hours: {h['total']:.2f} h in all — {h['active']:.2f} h on tasks, {h['unpaid']:.2f} h unpaid "
        f"(searching {h['unpaid_by_kind']['search']:.2f}, waiting {h['unpaid_by_kind']['wait']:.2f}, "
        f"returned work {h['unpaid_by_kind']['returned']:.2f}, qualification {h['unpaid_by_kind']['qualification']:.2f})",
        "- Money: pay unknown (no payment is recorded for this loop, so no cost and no wage are computed)"
        if m.get("pay_unknown") else
        f"- Money: {fmt(m['paid_to_workers'], cur)} paid to workers, of which {fmt(m['retroactive'], cur)} retroactive "
        f"(back-pay up to the wage floor, {m['retroactive_share']:.0%}); {fmt(m['fees_and_taxes'], cur)} in fees and taxes, "
        f"{fmt(m['total_cost'], cur)} in all (planned: {fmt(m['planned_cost'], cur)})"
        + (f"; still owed below the floor: {fmt(m['owed'], cur)}" if m.get("owed") else "")
        + (f"; fair cost (planned + back-pay + owed): {fmt(m['fair_cost'], cur)}" if m.get("fair_cost") is not None else ""),
    ]
    if w.get("workers"):
        lines.append(
            f"- Effective wage on total time ({w['currency']}/h): median {w['median']:.2f}, 10th percentile {w['p10']:.2f}, "
            f"lowest {w['min']:.2f}; {floor_text(w)}"
        )
    rej = card["rejections"]
    lines.append(f"- Rejections: {rej['count']}" + "".join(f"\n  - {n} x {md_text(reason)}" for reason, n in rej["reasons"].items()))
    lines.append(f"- Corrections of earlier answers: {card['corrections']}")
    from clicloop.orchestrator.postdeploy.card import markdown_lines

    lines += markdown_lines(card.get("post_deployment_corrections"), cur)
    return "\n".join(lines) + "\n"


def _review_share(card: dict[str, Any]) -> str:
    """For a version retrained on a deployment's reviews: how many of the answers bought trained it
    (the random audits and confirmed predictions that measured the error rate did not)."""
    own = [d for d in card.get("post_deployment_corrections") or [] if d["deployment"] + ":review" == card["loop"]]
    if not own:
        return ""
    used = own[0]["production_corrections_in_training"]
    return f"; {used} of them corrections in its training set, the rest audits and confirmations that measured errors"


def pseudo_labels_text(pseudo: dict[str, Any]) -> str:
    """Which pool items trained the model with a machine-made label, and in which rounds, in words.
    A recorded config without ``newest_check`` ran with its default (configs record a later
    field only when it differs from its default, so older loops keep their fingerprint)."""
    from clicloop.orchestrator.config import PseudoLabels

    which = "every unlabeled item" if pseudo["share"] >= 1 else f"the surest {pseudo['share']:.0%} of the unlabeled pool"
    if pseudo.get("agree"):
        which += " on which label spreading and the model's own prediction agreed"
    if pseudo.get("check_folds"):
        which += f", in rounds where they did no harm on held-out human labels ({pseudo['check_folds']} folds)"
    rounds = pseudo.get("newest_check", PseudoLabels.model_fields["newest_check"].default) if pseudo.get("agree") else 0
    if rounds:
        return which + (", in every round but those whose fit on human labels alone had got at least 90% of the labels "
                        f"bought in the last {rounds} rounds right, and no fewer than with them")
    return which + ", each round"


def _pseudo_line(pseudo: dict[str, Any] | None) -> list[str]:
    if not pseudo:
        return []
    return [f"- Also trained on label-spreading pseudo-labels: {pseudo_labels_text(pseudo)} "
            "(machine-made: no human time, not counted in the labels above)"]


def _f(v: float | None, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"
