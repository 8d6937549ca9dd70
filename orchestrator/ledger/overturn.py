"""Overturning a rejection: an answer rejected with its pay withheld is accepted after all (a gold
item whose key its workers later dispute), and the pay comes back.

The history stays: the reversal rows remain, each followed by a ``<reversal key>/reinstated``
row of the opposite amount, and the review row records the new decision and why. ``ledger
verify`` counts a reinstated reversal as undone, never as a second payment.
"""

from __future__ import annotations

import time

from sqlalchemy import Engine, select, update

from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.db import insert_ignore

REINSTATED = "/reinstated"  # the suffix of a reinstated reversal's key


def overturn(engine: Engine, task_key: str, reason: str, reviewer: str) -> bool:
    """Accept the rejected answer ``task_key`` (``reason`` says why) and pay back what its
    rejection reversed, in one transaction; True if it was rejected until now (idempotent)."""
    rv, p = s.reviews.c, s.payments.c
    with engine.begin() as conn:
        changed = conn.execute(update(s.reviews).where(rv.task_key == task_key, rv.decision == "reject")
                               .values(decision="accept", reason=reason, reviewer=reviewer, recorded_at=time.time())).rowcount
        if not changed:
            return False
        reversals = conn.execute(select(s.payments).where(p.task_key == task_key, p.kind.in_(("reward", "fee")),
                                                          p.amount_micros < 0)).all()
        insert_ignore(conn, s.payments, [
            {**r._mapping, "key": f"{r.key}{REINSTATED}", "amount_micros": -r.amount_micros, "reason": f"reinstated: {reason}",
             "recorded_at": time.time()} for r in reversals])
    return True
