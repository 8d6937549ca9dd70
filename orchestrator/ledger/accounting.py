"""Accounting, computed in SQL: what the human work cost and what it paid, per round, per
worker and per backend. Python only turns the grouped sums into ratios."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, case, exists, func, literal, select, union_all

from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.money import from_micros, ratio
from clicloop.orchestrator.ledger.unpaid import loose, loose_seconds

INCOME_KINDS = ("reward", "bonus", "adjustment")
PLANNED_KINDS = ("reward", "bonus")  # what the loop priced; adjustments are back-pay, their own line
a, p, w, rv, ca = s.assignments.c, s.payments.c, s.workers.c, s.reviews.c, s.cont_answers.c


def _unpaid() -> Any:
    return a.search_s + a.wait_s + a.returned_s


def spent(engine: Engine, loop: str, rounds: tuple[int, int] | None = None,
          answered_before: int | None = None) -> dict[str, Any]:
    """Answers bought, cost (everything paid, fees included), worker income, adjustments (back-pay,
    a part of income) and human hours, over all rounds or ``rounds = (first, last)`` inclusive.
    Money is exact (Decimal, :mod:`clicloop.orchestrator.ledger.money`). ``answered_before``
    (continuous mode): without the answers, and their pay, recorded while version
    ``answered_before`` or a later one was in use: the ledger as it stood when that version was
    put in use, which a resumed loop must decide from as the uninterrupted one did. Only answers
    numbered in ``cont_answers`` are cut so: extra answers, qualification seconds and returned
    work recorded later still count (none on the event crowd; a ``max_hours`` or forecast stop
    after a resume may then differ from the uninterrupted run's)."""
    wa, wp, ww = [a.loop == loop], [p.loop == loop], [w.loop == loop]
    if rounds is not None:
        wa += [a.round_no.between(*rounds)]
        wp += [p.round_no.between(*rounds)]
        ww += [w.first_round.between(*rounds)]
    if answered_before is not None:  # NOT EXISTS, an anti-join (NOT IN rescanned the list per row on PostgreSQL)
        def later(key: Any) -> Any:
            return ~exists().where(ca.task_key == key, ca.loop == loop, ca.answered_round >= answered_before)

        wa += [later(a.task_key)]
        wp += [p.task_key.is_(None) | later(p.task_key)]
    with engine.connect() as conn:
        n, active, unpaid = conn.execute(
            select(func.count(), func.coalesce(func.sum(a.active_s), 0.0), func.coalesce(func.sum(_unpaid()), 0.0)).where(*wa)
        ).one()
        cost, income, adjusted = conn.execute(
            select(func.coalesce(func.sum(p.amount_micros), 0),
                   func.coalesce(func.sum(case((p.kind.in_(INCOME_KINDS), p.amount_micros), else_=0)), 0),
                   func.coalesce(func.sum(case((p.kind == "adjustment", p.amount_micros), else_=0)), 0)).where(*wp)
        ).one()
        qual = conn.execute(select(func.coalesce(func.sum(w.qualification_s), 0.0)).where(*ww)).scalar_one()
        trailing = sum(loose_seconds(conn, loop, rounds=rounds).values())  # waiting after last answers, returned work
    active_h = float(active) / 3600  # PostgreSQL sums come back as Decimal: normalise
    return {"answers": int(n), "cost": from_micros(cost), "income": from_micros(income), "adjustments": from_micros(adjusted),
            "active_hours": active_h,
            "total_hours": active_h + (float(unpaid) + float(qual) + trailing) / 3600}


def pay_unknown(engine: Engine, loop: str) -> bool:
    """Answers recorded and not one payment: nobody told clicloop what the work paid (e.g. an
    in-house Label Studio served with ``--hourly-wage 0``), so no cost, wage, owed wage or
    adjustment is computed for the loop. The one rule of the report, ``ledger adjust``, the labor
    card and the dashboard."""
    with engine.connect() as conn:
        if conn.execute(select(p.key).where(p.loop == loop).limit(1)).first() is not None:
            return False
        return conn.execute(select(a.task_key).where(a.loop == loop).limit(1)).first() is not None


def effort_by_round(engine: Engine, loop: str) -> dict[int, dict[str, Any]]:
    """Per round: answers, active and unpaid seconds, worker income (``reward``: rewards and bonuses,
    the loop's planned pay), ``adjustment`` (back-pay booked in the round), fees, quarantined answers.
    Money is exact (Decimal)."""
    with engine.connect() as conn:
        work = conn.execute(
            select(a.round_no, func.count(), func.sum(a.active_s), func.sum(_unpaid()),
                   func.sum(case((a.status == "quarantined", 1), else_=0)))
            .where(a.loop == loop).group_by(a.round_no)
        ).all()
        money = dict((r, (inc, adj, fee)) for r, inc, adj, fee in conn.execute(
            select(p.round_no, func.sum(case((p.kind.in_(PLANNED_KINDS), p.amount_micros), else_=0)),
                   func.sum(case((p.kind == "adjustment", p.amount_micros), else_=0)),
                   func.sum(case((p.kind.in_(INCOME_KINDS), 0), else_=p.amount_micros)))
            .where(p.loop == loop).group_by(p.round_no)
        ).all())
        qual = dict(conn.execute(select(w.first_round, func.sum(w.qualification_s)).where(w.loop == loop).group_by(w.first_round)).all())
        trailing = loose_seconds(conn, loop, by="round_no")  # waiting after the last answers, returned work
    answered = {r: (n, active, unpaid, quarantined) for r, n, active, unpaid, quarantined in work}
    out: dict[int, dict[str, Any]] = {}
    # every round with a fact: answers, money, a first worker, or unpaid time alone (a loop that stopped in a fresh
    # round books its last waiting there, and back-pay lands on the last round: it was dropped from such a round)
    for r in sorted(answered.keys() | money.keys() | qual.keys() | trailing.keys()):
        n, active, unpaid, quarantined = answered.get(r, (0, 0.0, 0.0, 0))
        income, adjusted, fee = money.get(r, (0, 0, 0))
        out[r] = {"answers": int(n), "reward": from_micros(income), "adjustment": from_micros(adjusted), "fee": from_micros(fee),
                  "active_s": float(active or 0.0),
                  "unpaid_s": float(unpaid or 0.0) + float(qual.get(r, 0.0)) + float(trailing.get(r, 0.0)),
                  "quarantined": int(quarantined or 0)}
    return out


def by_worker(engine: Engine, loop: str | None = None, *, before_round: int | None = None) -> list[dict[str, Any]]:
    """Per (loop, backend, worker): answers, active and unpaid hours, income, rejections, and the
    effective hourly wage on paid time and on total time (rounds before ``before_round`` only)."""
    return _grouped(engine, loop, ("loop", "backend", "worker"), before_round)


def by_backend(engine: Engine, loop: str | None = None, *, before_round: int | None = None) -> list[dict[str, Any]]:
    """The same figures per (loop, backend)."""
    return _grouped(engine, loop, ("loop", "backend"), before_round)


def unpaid_by_kind(engine: Engine, loop: str, *, before_round: int | None = None) -> dict[str, float]:
    """Unpaid hours by kind: searching, waiting, returned work, qualification tests."""
    wa, ww = [a.loop == loop], [w.loop == loop]
    if before_round is not None:
        wa.append(a.round_no < before_round)
        ww.append(w.first_round < before_round)
    with engine.connect() as conn:
        search, wait, returned = conn.execute(
            select(*(func.coalesce(func.sum(c), 0.0) for c in (a.search_s, a.wait_s, a.returned_s))).where(*wa)).one()
        qual = conn.execute(select(func.coalesce(func.sum(w.qualification_s), 0.0)).where(*ww)).scalar_one()
        other = loose_seconds(conn, loop, before_round=before_round, by="kind")  # waiting after the last answers, returned work
    wait, returned = float(wait) + other.get("wait", 0.0), float(returned) + other.get("returned", 0.0)
    return {"search": float(search) / 3600, "wait": wait / 3600, "returned": returned / 3600,
            "qualification": float(qual) / 3600}


def _grouped(engine: Engine, loop: str | None, keys: Sequence[str], before_round: int | None = None) -> list[dict[str, Any]]:
    # one UNION of three fact streams (work, money, qualification), summed per group in SQL
    zero = literal(0.0)
    work = select(*(a[k] for k in keys), func.count().label("answers"), func.sum(a.active_s).label("active_s"),
                  func.sum(_unpaid()).label("unpaid_s"), zero.label("income"), zero.label("fees"),
                  zero.label("rejected")).group_by(*(a[k] for k in keys))
    money = select(*(p[k] for k in keys), literal(0).label("answers"), zero.label("active_s"), zero.label("unpaid_s"),
                   func.sum(case((p.kind.in_(INCOME_KINDS), p.amount_micros), else_=0)).label("income"),
                   func.sum(case((p.kind.in_(INCOME_KINDS), 0), else_=p.amount_micros)).label("fees"),
                   zero.label("rejected")).group_by(*(p[k] for k in keys))
    quals = select(*(w[k] for k in keys), literal(0).label("answers"), zero.label("active_s"),
                   func.sum(w.qualification_s).label("unpaid_s"), zero.label("income"), zero.label("fees"),
                   zero.label("rejected")).group_by(*(w[k] for k in keys))
    # one row per rejection (the outer query sums them), found from the few reviews with one primary-key
    # lookup each. The answer's loop and round are tested in a form no index serves (``|| ''``, ``+ 0``):
    # SQLite, without statistics, would otherwise walk every answer of the loop through an index
    # to find the rejected ones (seconds, not milliseconds, at 1,000,000 answers).
    rejected = (select(*(a[k] for k in keys), literal(0).label("answers"), zero.label("active_s"), zero.label("unpaid_s"),
                       zero.label("income"), zero.label("fees"), literal(1).label("rejected"))
                .select_from(s.reviews).join(s.assignments, a.task_key == rv.task_key).where(rv.decision == "reject"))
    if loop is not None:
        work, money, quals, rejected = (work.where(a.loop == loop), money.where(p.loop == loop), quals.where(w.loop == loop),
                                        rejected.where(a.loop.concat("") == loop))
    if before_round is not None:
        work, money, quals, rejected = (work.where(a.round_no < before_round), money.where(p.round_no < before_round),
                                        quals.where(w.first_round < before_round), rejected.where(a.round_no + 0 < before_round))
    with engine.connect() as conn:
        parts = [work, money, quals, rejected]
        other = loose(conn)  # waiting after the last answers, returned work
    if other is not None:
        oc = other.c
        extra = select(*(oc[k] for k in keys), literal(0).label("answers"), zero.label("active_s"),
                       func.sum(oc.seconds).label("unpaid_s"), zero.label("income"), zero.label("fees"),
                       zero.label("rejected")).group_by(*(oc[k] for k in keys))
        extra = extra.where(oc.loop == loop) if loop is not None else extra
        parts.append(extra.where(oc.round_no < before_round) if before_round is not None else extra)
    facts = union_all(*parts).subquery()
    query = select(*(facts.c[k] for k in keys), *(func.sum(facts.c[c]).label(c) for c in
                   ("answers", "active_s", "unpaid_s", "income", "fees", "rejected"))).group_by(*(facts.c[k] for k in keys))
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(*(facts.c[k] for k in keys))).all()
    return [_wages(dict(zip(keys, r[: len(keys)])), *r[len(keys) :]) for r in rows]


def _wages(group: dict[str, Any], answers: Any, active_s: Any, unpaid_s: Any, income: Any, fees: Any, rejected: Any) -> dict[str, Any]:
    """One group's figures; ``income`` and ``fees`` are sums of micro-units, returned as exact Decimals,
    wages as Decimals rounded to the micro-unit."""
    active_h, unpaid_h = float(active_s or 0) / 3600, float(unpaid_s or 0) / 3600
    total_h, money = active_h + unpaid_h, from_micros(income)
    return {
        **group, "answers": int(answers or 0), "active_hours": active_h, "unpaid_hours": unpaid_h, "total_hours": total_h,
        "income": money, "fees": from_micros(fees), "rejected": int(rejected or 0),
        "rejection_rate": int(rejected or 0) / int(answers) if answers else 0.0,
        "unpaid_share": unpaid_h / total_h if total_h else 0.0,
        "wage_paid_time": ratio(money, active_h),
        "wage_total_time": ratio(money, total_h),
    }


def votes(engine: Engine, loop: str, *, round_no: int | None = None, item_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Usable answers with the latest correction of each applied (versions sort in time order)."""
    where = [a.loop == loop, a.status == "submitted"]
    if round_no is not None:
        where.append(a.round_no == round_no)
    if item_ids is not None:
        where.append(a.item_id.in_(list(item_ids)))
    c = s.corrections.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(a.task_key, a.item_id, a.worker, a.label).outerjoin(s.reviews, rv.task_key == a.task_key)
            .where(*where, (rv.decision.is_(None)) | (rv.decision == "accept")).order_by(a.task_key)
        ).all()
        keys = [r.task_key for r in rows]
        latest: dict[str, tuple[str, str | None]] = {}
        for i in range(0, len(keys), 500):
            for key, task_key, event, label in conn.execute(
                select(c.key, c.task_key, c.event, c.label).where(c.task_key.in_(keys[i : i + 500])).order_by(c.key)
            ):
                latest[task_key] = (event, label)  # ordered by key = task@version: the last one wins
    out = []
    for r in rows:
        event, label = latest.get(r.task_key, ("created", r.label))
        if event != "deleted":
            out.append({"item_id": r.item_id, "worker": r.worker, "label": label})
    return out
