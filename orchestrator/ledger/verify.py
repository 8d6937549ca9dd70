"""``clicloop ledger verify``: the invariants that make the ledger a system of record.

Each check is one SQL query that returns the offending rows (at most a few, as examples).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, func, not_, or_, select

from clicloop.orchestrator.crowd.plausibility import DEFAULT_MAX_ACTIVE_S
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.reviews import REINSTATED

a, p, t, w, rv, lab = s.assignments.c, s.payments.c, s.tasks.c, s.workers.c, s.reviews.c, s.labels.c
pdr = s.pd_reviews.c
back = s.payments.alias("reinstated").c


@dataclass(frozen=True)
class Violation:
    check: str
    count: int
    examples: list[str]


def _checks(max_active_s: float | None = DEFAULT_MAX_ACTIVE_S) -> dict[str, object]:
    reward_or_fee = p.kind.in_(("reward", "fee"))
    plausible = {} if max_active_s is None else {
        f"no answer records more than {max_active_s:g} active seconds unless quarantined (the plausibility limit)": (
            select(a.task_key).where(a.active_s > max_active_s, a.status != "quarantined")
        ),
    }
    return {**plausible,
        "every payment for a task has its answer, to the same worker": (
            select(p.key).outerjoin(s.assignments, a.task_key == p.task_key)
            .where(p.task_key.is_not(None), or_(a.task_key.is_(None), a.worker != p.worker))
        ),
        "no answer is paid twice (one reward, one fee, at most one reversal each)": (
            select(p.task_key).where(reward_or_fee, p.amount_micros > 0, not_(p.key.endswith(REINSTATED)))
            .group_by(p.task_key, p.kind).having(func.count() > 1)
        ),
        "reversals undo exactly one rejected payment (or are paid back when the rejection is overturned)": (
            select(p.key).where(reward_or_fee, p.amount_micros < 0).outerjoin(
                s.reviews, and_(rv.task_key == p.task_key, rv.decision == "reject")).where(rv.task_key.is_(None))
            .where(not_(select(back.key).where(back.key == p.key + REINSTATED, back.amount_micros == -p.amount_micros).exists()))
        ),
        "every reinstated payment pays back one reversal of an overturned rejection": (
            select(p.key).where(p.key.endswith(REINSTATED)).where(or_(
                not_(select(back.key).where(back.key == func.substr(p.key, 1, func.length(p.key) - len(REINSTATED)),
                                            back.task_key == p.task_key, back.amount_micros == -p.amount_micros,
                                            back.amount_micros < 0).exists()),
                not_(select(rv.task_key).where(rv.task_key == p.task_key, rv.decision == "accept").exists())))
        ),
        "worker income is never negative": (
            select(p.worker).where(p.kind.in_(("reward", "bonus", "adjustment"))).group_by(p.loop, p.backend, p.worker)
            .having(func.sum(p.amount_micros) < 0)
        ),
        "every answer belongs to a recorded task": (
            select(a.task_key).outerjoin(s.tasks, t.key == a.task_key).where(t.key.is_(None))
        ),
        "every worker who answered is registered (for qualification time)": (
            select(a.worker).outerjoin(s.workers, and_(w.loop == a.loop, w.backend == a.backend, w.worker == a.worker))
            .where(w.worker.is_(None))
        ),
        "every rejection carries a reason": (
            select(rv.task_key).where(rv.decision == "reject", or_(rv.reason.is_(None), func.trim(rv.reason) == ""))
        ),
        "seconds are finite and not negative": (
            select(a.task_key).where(or_(a.active_s < 0, a.search_s < 0, a.wait_s < 0, a.returned_s < 0))
        ),
        "every label of a first aggregation comes from answers": (
            select(lab.item_id).where(lab.revision == 0).outerjoin(
                s.assignments, and_(a.loop == lab.loop, a.item_id == lab.item_id)).where(a.task_key.is_(None))
        ),
        "every answered review task has its verdict": (  # deploy review: the answer, its pay and its verdict go together
            select(a.task_key).join(s.tasks, t.key == a.task_key).outerjoin(s.pd_reviews, pdr.task_key == a.task_key)
            .where(t.kind == "review", a.status == "submitted", pdr.task_key.is_(None))
        ),
        "every review verdict has its label": (
            select(pdr.task_key).join(s.assignments, a.task_key == pdr.task_key).outerjoin(
                s.labels, and_(lab.loop == a.loop, lab.item_id == a.item_id, lab.revision == 0)).where(lab.item_id.is_(None))
        ),
        "round numbers of answers match their tasks": (
            select(a.task_key).join(s.tasks, t.key == a.task_key).where(not_(and_(t.round_no == a.round_no, t.loop == a.loop)))
        ),
    }


def verify(ledger: Ledger, max_active_s: float | None = DEFAULT_MAX_ACTIVE_S) -> list[Violation]:
    """Every broken invariant with up to five example keys; an empty list means the ledger is sound.
    ``max_active_s``: the plausibility limit on one answer's active seconds (None: not checked),
    the backends' default unless they were given another."""
    out = []
    with ledger.engine_.connect() as conn:
        for name, query in _checks(max_active_s).items():
            sub = query.subquery()  # type: ignore[attr-defined]
            count = conn.execute(select(func.count()).select_from(sub)).scalar_one()
            if count:
                examples = [str(v) for v in conn.execute(select(sub).limit(5)).scalars()]
                out.append(Violation(name, int(count), examples))
    return out


CHECKS = tuple(_checks())


def check_names(max_active_s: float | None = DEFAULT_MAX_ACTIVE_S) -> tuple[str, ...]:
    """The invariants :func:`verify` checks with this plausibility limit."""
    return tuple(_checks(max_active_s))
