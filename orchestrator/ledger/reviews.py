"""Reviews of answers: accepting or rejecting one (a rejection always with a reason the worker can
read; withholding pay only when asked), and overturning a rejection: an answer rejected with its
pay withheld is accepted after all (a gold item whose key its workers later dispute), and the pay
comes back.

The history stays: the reversal rows remain, each followed by a ``<reversal key>/reinstated``
row of the opposite amount, and the review row records the new decision and why, with the
rejection's reason (and keeps the rejection's time). ``ledger
verify`` counts a reinstated reversal as undone, never as a second payment.
"""

from __future__ import annotations

import time

from sqlalchemy import Engine, select, update

from clicloop.orchestrator.errors import LedgerError
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.db import insert_ignore

REINSTATED = "/reinstated"  # the suffix of a reinstated reversal's key


def overturn(engine: Engine, task_key: str, reason: str, reviewer: str) -> bool:
    """Accept the rejected answer ``task_key`` (``reason`` says why) and pay back what its
    rejection reversed, in one transaction; True if it was rejected until now (idempotent)."""
    rv, p = s.reviews.c, s.payments.c
    with engine.begin() as conn:
        before = conn.execute(select(rv.reason).where(rv.task_key == task_key, rv.decision == "reject")).first()
        if before is None:
            return False
        conn.execute(update(s.reviews).where(rv.task_key == task_key, rv.decision == "reject")  # its time stays the rejection's
                     .values(decision="accept", reason=f"{reason} (rejected before: {before.reason})", reviewer=reviewer))
        reversals = conn.execute(select(s.payments).where(p.task_key == task_key, p.kind.in_(("reward", "fee")),
                                                          p.amount_micros < 0)).all()
        insert_ignore(conn, s.payments, [
            {**r._mapping, "key": f"{r.key}{REINSTATED}", "amount_micros": -r.amount_micros, "reason": f"reinstated: {reason}",
             "recorded_at": time.time()} for r in reversals])
    return True


def review(engine: Engine, task_key: str, *, accept: bool, reason: str | None = None, reviewer: str = "requester",
           withhold_pay: bool = False) -> bool:
    """Accept or reject an answer; a rejection needs a reason. ``withhold_pay`` reverses its
    reward and fee (as platforms do for rejected work). True if this decision is new."""
    if not accept and not (reason and reason.strip()):
        raise LedgerError(f"rejecting {task_key} needs a reason the worker can read (and appeal)")
    with engine.begin() as conn:
        row = conn.execute(select(s.assignments.c.loop).where(s.assignments.c.task_key == task_key)).first()
        if row is None:
            raise LedgerError(f"no answer for task {task_key!r} in this ledger")
        if conn.execute(select(s.reviews.c.task_key).where(s.reviews.c.task_key == task_key)).first():
            return False
        now = time.time()
        insert_ignore(conn, s.reviews, [{"task_key": task_key, "loop": row.loop, "decision": "accept" if accept else "reject",
                                         "reason": reason, "reviewer": reviewer, "recorded_at": now}])
        if not accept and withhold_pay:
            paid = conn.execute(select(s.payments).where(s.payments.c.task_key == task_key,
                                                        s.payments.c.kind.in_(("reward", "fee")))).all()
            insert_ignore(conn, s.payments, [
                {**p._mapping, "key": f"{p.key}/reversal", "amount_micros": -p.amount_micros, "reason": f"rejected: {reason}",
                 "recorded_at": now}
                for p in paid
            ])
    return True
