"""The wage floor: rewards priced so that the floor holds on total time, workers below it, and
the adjustment payments that lift them to it.

Effective wages count unpaid time (searching, waiting, returned work, qualification tests):
a wage that looks fair on paid time alone is often far below the floor on total time.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import func, select

from clicloop.orchestrator.config import WageFloor
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.accounting import by_worker
from clicloop.orchestrator.ledger.accounting import pay_unknown as accounting_pay_unknown
from clicloop.orchestrator.ledger.money import MICRO, ZERO, ceil_cents, exact

RECENT_ANSWERS = 500


@dataclass(frozen=True)
class Adjustment:
    """A payment proposed to lift one worker's effective wage (total time) to the floor."""

    key: str
    loop: str
    backend: str
    worker: str
    amount: Decimal
    currency: str
    wage_total_time: Decimal
    floor: Decimal


def price_per_answer(ledger: Ledger, loop: str, backend: str, floor: WageFloor) -> float | None:
    """The reward per answer that pays the floor for the MEDIAN answer's total time (active and
    unpaid seconds of the last answers, plus qualification time spread over all answers), as
    Prolific checks its floor against the median completion time. None before any answer."""
    a, w = s.assignments.c, s.workers.c
    with ledger.engine_.connect() as conn:
        seconds = conn.execute(
            select(a.active_s + a.search_s + a.wait_s + a.returned_s).where(a.loop == loop, a.backend == backend)
            .order_by(a.recorded_at.desc(), a.task_key.desc()).limit(RECENT_ANSWERS)
        ).scalars().all()
        n_all = conn.execute(select(func.count()).where(a.loop == loop, a.backend == backend)).scalar_one()
        qual = conn.execute(select(func.coalesce(func.sum(w.qualification_s), 0.0)).where(w.loop == loop, w.backend == backend)).scalar_one()
    if not seconds:
        return None
    per_answer = float(np.median(np.asarray(seconds, dtype=float))) + float(qual) / max(int(n_all), 1)
    return round(floor.for_backend(backend).amount * per_answer / 3600, 6)


def below_floor(ledger: Ledger, loop: str, floor: WageFloor, backend: str | None = None) -> list[dict[str, Any]]:
    """Workers whose effective wage on total time is below their backend's floor."""
    out = []
    for row in by_worker(ledger.engine_, loop):
        if backend is not None and row["backend"] != backend:
            continue
        f = floor.for_backend(row["backend"])
        wage = row["wage_total_time"]
        if wage is not None and wage < f.amount - 1e-9 and _currency(ledger, loop, row) in (f.currency, None):
            out.append({**row, "floor": exact(f.amount), "currency": f.currency})
    return out


def pay_unknown(ledger: Ledger, loop: str) -> bool:
    """No payment recorded for a loop with answers: :func:`clicloop.orchestrator.ledger.accounting.pay_unknown`."""
    return accounting_pay_unknown(ledger.engine_, loop)


def proposed_adjustments(ledger: Ledger, loop: str, floor: WageFloor) -> list[Adjustment]:
    """One adjustment per worker below the floor: ``floor * total hours - income``; none where
    pay is unknown (:func:`pay_unknown`).

    The key includes the worker's answer count, so applying twice pays once, and new work
    later gets a new proposal.
    """
    if pay_unknown(ledger, loop):
        return []
    return [
        Adjustment(
            key=f"{loop}/adjustment/{r['backend']}/{r['worker']}/{r['answers']}", loop=loop, backend=r["backend"],
            worker=r["worker"], amount=owed_amount(r), currency=r["currency"], wage_total_time=r["wage_total_time"], floor=r["floor"],
        )
        for r in below_floor(ledger, loop, floor)
        if owed_amount(r) > 0
    ]


def owed_amount(row: dict[str, Any]) -> Decimal:
    """What lifts the worker to the floor, rounded UP to the cent (never leaves them just below)."""
    due = (exact(row["floor"]) * Decimal(repr(float(row["total_hours"]))) - row["income"]).quantize(MICRO)  # no float noise
    return ceil_cents(due) if due > 0 else ZERO


def owed(ledger: Ledger, loop: str, floor: WageFloor) -> dict[str, Any]:
    """Wages still owed on ``loop``: the sum of :func:`proposed_adjustments` (exact), with its
    currency and the number of workers below the floor; ``None`` amounts where pay is unknown."""
    if pay_unknown(ledger, loop):
        return {"workers_below_floor": None, "amount": None, "currency": None}
    proposals = proposed_adjustments(ledger, loop, floor)
    currency = proposals[0].currency if proposals else (ledger.currency(loop) or floor.currency)
    return {"workers_below_floor": len(below_floor(ledger, loop, floor)), "amount": sum((p.amount for p in proposals), ZERO),
            "currency": currency}


def apply_adjustments(ledger: Ledger, adjustments: list[Adjustment], round_no: int) -> int:
    """Record the adjustment payments; returns how many were new."""
    return sum(
        ledger.pay(adj.key, adj.loop, round_no, adj.backend, adj.worker, "adjustment", adj.amount, adj.currency,
                   reason=f"effective wage {adj.wage_total_time:.2f}/h on total time was below the floor {adj.floor:.2f}/h")
        for adj in adjustments
    )


def _currency(ledger: Ledger, loop: str, row: dict[str, Any]) -> str | None:
    p = s.payments.c
    with ledger.engine_.connect() as conn:
        return conn.execute(select(p.currency).where(p.loop == loop, p.backend == row["backend"], p.worker == row["worker"]).limit(1)).scalar()
