"""The wage floor: rewards priced so that the floor holds on total time, workers below it, and
the adjustment payments that lift them to it.

Effective wages count unpaid time (searching, waiting, returned work, qualification tests):
a wage that looks fair on paid time alone is often far below the floor on total time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import func, select

from clicloop.orchestrator.config import WageFloor
from clicloop.orchestrator.fairwork.currency import held_to, not_compared, pay_currencies
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.accounting import INCOME_KINDS, by_worker
from clicloop.orchestrator.ledger.accounting import pay_unknown as accounting_pay_unknown
from clicloop.orchestrator.ledger.money import MICRO, ZERO, ceil_cents, exact, from_micros
from clicloop.orchestrator.ledger.unpaid import loose

RECENT_ANSWERS = 500
CATCH_UP_SPREAD = 5  # the deficit is paid over at least horizon / 5 answers (the answers left, when more)
CATCH_UP_CAP = 1.5  # a price never exceeds 1.5x the floor's price for the mean answer (no spikes)


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


def price_per_answer(ledger: Ledger, loop: str, backend: str, floor: WageFloor, expected_answers: int | None = None) -> Decimal | None:
    """The reward per answer that pays the floor on total time: ``floor x (MEAN seconds of the
    last answers, active and unpaid, plus one standard error + qualification seconds / horizon)``,
    raised to catch up on what earlier answers were underpaid (spread over the answers left before
    the horizon, at least ``horizon / CATCH_UP_SPREAD``) and capped at :data:`CATCH_UP_CAP` times
    that; an exact Decimal to the micro-unit. None before any answer.

    One standard error above the mean: a price at the bare mean is as likely to land below the
    floor as above (the quickstart's random loop ended at 11.77 EUR/h on a 12.02 floor, the catch-
    up spread over a third of the horizon never paid the last of its deficit); with it, and the
    deficit spread over a fifth, both loops of the default quickstart (300 answers) end above the
    floor (tests/orchestrator/cli/test_quickstart.py); at 100 answers both still end a little below
    (11.73 and 11.62 EUR/h: the qualification tests of workers who join later are priced late), and
    back-pay covers it.

    The mean, not the median: a worker's wage on total time is income over the SUM of their
    seconds, and log-normal task times have a mean above their median, so a median price leaves
    the typical worker below the floor. Qualification tests are a one-off per worker: spread over
    the answers so far, the first rounds (few answers, every new worker's test) priced a task at
    ten times its final price (a spike that overpaid the first workers and not the later ones);
    spread over the loop's horizon (``expected_answers``, e.g. ``stop.max_labels``, else
    :data:`RECENT_ANSWERS` beyond the answers so far), the price rises smoothly as workers join and converges
    (tests/orchestrator/fairwork/test_pricing.py, many seeds). A worker who answered fewer
    tasks than the average still falls short of the floor by part of their test's time: that
    is what ``ledger adjust`` pays. Unpaid time no answer carries (the waiting after the last
    answers a stopped loop records, returned work) is spread over every answer: a loop stopped by
    its budget and resumed had that waiting moved out of its answers and paid less for the same
    work (0.151 against 0.191 EUR a task)."""
    a, w, p = s.assignments.c, s.workers.c, s.payments.c
    with ledger.engine_.connect() as conn:
        seconds = conn.execute(
            select(a.active_s + a.search_s + a.wait_s + a.returned_s).where(a.loop == loop, a.backend == backend)
            .order_by(a.recorded_at.desc(), a.task_key.desc()).limit(RECENT_ANSWERS)
        ).scalars().all()
        n_all = int(conn.execute(select(func.count()).where(a.loop == loop, a.backend == backend)).scalar_one())
        qual = float(conn.execute(select(func.coalesce(func.sum(w.qualification_s), 0.0))
                                  .where(w.loop == loop, w.backend == backend)).scalar_one())
        free = loose(conn)  # unpaid time no answer carries (waiting after the last answers, returned work)
        loose_s = 0.0 if free is None else float(conn.execute(
            select(func.coalesce(func.sum(free.c.seconds), 0.0)).where(free.c.loop == loop, free.c.backend == backend)).scalar_one())
        paid = from_micros(conn.execute(select(func.coalesce(func.sum(p.amount_micros), 0))
                                        .where(p.loop == loop, p.backend == backend, p.kind.in_(INCOME_KINDS))).scalar_one())
    if not seconds:
        return None
    rate = float(floor.for_backend(backend).amount) / 3600  # a model of times, in floats: money again at the end
    horizon = max(int(expected_answers or 0), n_all + 1) if expected_answers else n_all + RECENT_ANSWERS
    times = np.asarray(seconds, dtype=float)
    # the mean time's upper one-standard-error bound: priced at the bare mean, half the loops ended below the floor
    mean = float(times.mean() + (times.std(ddof=1) / math.sqrt(times.size) if times.size > 1 else 0.0))
    mean += loose_s / max(n_all, 1)  # spread over every answer: a stop-and-resume moved waiting out of the answers
    base = rate * (mean + qual / horizon)
    # what earlier answers were underpaid, spread over the answers left, at least a fifth of the horizon (no end
    # spike; spread over a third, too little of the last deficit was paid: the quickstart's random loop, 11.77 EUR/h)
    catch_up = (rate * (mean * horizon + qual) - float(paid)) / max(horizon - n_all, horizon // CATCH_UP_SPREAD, 1)
    # the price (a model of the times, in floats) becomes money here: exact, to the micro-unit
    return exact(round(min(max(base, catch_up), CATCH_UP_CAP * base), 6))


def below_floor(ledger: Ledger, loop: str, floor: WageFloor, backend: str | None = None) -> list[dict[str, Any]]:
    """Workers whose effective wage on total time is below their backend's floor (a floor in
    another currency than their pay is not compared: :mod:`.currency`)."""
    out = []
    currencies = pay_currencies(ledger.engine_, loop)
    for row in by_worker(ledger.engine_, loop):
        if backend is not None and row["backend"] != backend:
            continue
        f = floor.for_backend(row["backend"])
        amount = held_to(floor, row["backend"], currencies.get((loop, row["backend"])))
        wage = row["wage_total_time"]
        if amount is not None and wage is not None and wage < amount:
            out.append({**row, "floor": f.amount, "currency": f.currency})
    return out


def strict_floor_pause(ledger: Ledger, loop: str, floor: WageFloor, backend: str) -> str | None:
    """Why a loop with ``wage_floor.strict`` pauses dispatching (workers on ``backend`` below the
    floor, and what to do), or None: not strict, or nobody below."""
    if not floor.strict:
        return None
    low = below_floor(ledger, loop, floor, backend=backend)
    if not low:
        return None
    f = floor.for_backend(backend)
    return (f"wage floor (strict): {len(low)} worker(s) on {backend} earn below {f.amount:.2f} {f.currency}/h on total "
            "time; pay the adjustments (clicloop ledger adjust with this loop's config and --apply), then run again to go on")


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
    return _adjustments(loop, below_floor(ledger, loop, floor))


def _adjustments(loop: str, below: list[dict[str, Any]]) -> list[Adjustment]:
    """The adjustments of the workers :func:`below_floor` found (those owed a cent or more)."""
    return [
        Adjustment(
            key=f"{loop}/adjustment/{r['backend']}/{r['worker']}/{r['answers']}", loop=loop, backend=r["backend"],
            worker=r["worker"], amount=owed_amount(r), currency=r["currency"], wage_total_time=r["wage_total_time"], floor=r["floor"],
        )
        for r in below
        if owed_amount(r) > 0
    ]


def owed_amount(row: dict[str, Any]) -> Decimal:
    """What lifts the worker to the floor, rounded UP to the cent (never leaves them just below)."""
    due = (exact(row["floor"]) * Decimal(repr(float(row["total_hours"]))) - row["income"]).quantize(MICRO)  # no float noise
    return ceil_cents(due) if due > 0 else ZERO


def owed(ledger: Ledger, loop: str, floor: WageFloor) -> dict[str, Any]:
    """Wages still owed on ``loop``: the sum of :func:`proposed_adjustments` (exact), with its
    currency and the number of workers below the floor; ``None`` amounts where pay is unknown, or
    where a backend's floor is in another currency than its pay (``not_compared`` says which and
    what to give instead: :func:`.currency.not_compared`)."""
    if pay_unknown(ledger, loop):
        return {"workers_below_floor": None, "amount": None, "currency": None, "not_compared": []}
    notes = not_compared(floor, pay_currencies(ledger.engine_, loop))
    if notes:
        return {"workers_below_floor": None, "amount": None, "currency": ledger.currency(loop), "not_compared": notes}
    below = below_floor(ledger, loop, floor)  # once: the per-worker query reads every answer of the loop
    proposals = _adjustments(loop, below)
    currency = proposals[0].currency if proposals else (ledger.currency(loop) or floor.currency)
    return {"workers_below_floor": len(below), "amount": sum((p.amount for p in proposals), ZERO),
            "currency": currency, "not_compared": []}


def fair_cost(planned: Decimal, back_pay: Decimal, owed_now: Decimal | None) -> Decimal | None:
    """The fair cost of a loop's work: its planned cost (what the loop priced: rewards, bonuses,
    fees), the back-pay booked, and what is still owed below the floor; None when the owed amount
    is unknown (pay unknown). The one definition: the report's ``Totals.fair_cost``, the
    dashboard's fair cost and the labor card's ``money.fair_cost`` all come from here."""
    return None if owed_now is None else planned + back_pay + owed_now


def apply_adjustments(ledger: Ledger, adjustments: list[Adjustment], round_no: int) -> int:
    """Record the adjustment payments; returns how many were new."""
    return sum(
        ledger.pay(adj.key, adj.loop, round_no, adj.backend, adj.worker, "adjustment", adj.amount, adj.currency,
                   reason=f"effective wage {adj.wage_total_time:.2f} {adj.currency}/h on total time was below the floor "
                          f"{adj.floor:.2f} {adj.currency}/h")
        for adj in adjustments
    )
