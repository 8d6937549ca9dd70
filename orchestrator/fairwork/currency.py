"""Which wage floor a worker is held to: the floor of their backend, in the currency they are paid
in. A floor in another currency is not compared with their wage (no exchange rate is assumed):
every view says "not compared" and why, instead of 0 owed or a euro amount read as dollars. The
one rule of the report, ``ledger adjust``, the dashboard and the labor card."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select

from clicloop.orchestrator.config import WageFloor
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.money import exact


def pay_currencies(engine: Any, loop: str | None = None) -> dict[tuple[str, str], str]:
    """``(loop, backend) -> currency`` of the payments recorded (a backend pays in one currency;
    a loop or backend with no payment is absent)."""
    p = s.payments.c
    query = select(p.loop, p.backend, p.currency).distinct().order_by(p.loop, p.backend, p.currency)
    if loop is not None:
        query = query.where(p.loop == loop)
    with engine.connect() as conn:
        return {(row.loop, row.backend): row.currency for row in conn.execute(query)}


def held_to(floor: WageFloor, backend: str, currency: str | None) -> Decimal | None:
    """The floor (an amount in ``currency``) a worker on ``backend`` paid in ``currency`` is held
    to; None where the backend's floor is in another currency. ``currency`` None: nothing paid yet,
    the floor applies as given."""
    f = floor.for_backend(backend)
    return exact(f.amount) if currency in (None, f.currency) else None


def not_compared(floor: WageFloor, currencies: dict[tuple[str, str], str]) -> list[str]:
    """One line per loop and backend whose floor is in another currency than its pay: what is not
    compared and what to give instead."""
    out = []
    for (loop, backend), currency in sorted(currencies.items()):
        f = floor.for_backend(backend)
        if held_to(floor, backend, currency) is None:
            out.append(f"{loop} / {backend}: its wage floor is {f.amount:.2f} {f.currency}/h and its pay in {currency}, so wages "
                       f"and the floor are not compared (no exchange rate is assumed); give a floor in {currency}: "
                       f"wage_floor.per_backend.{backend}: {{amount: ..., currency: {currency}}} in the config, or "
                       f"--floor AMOUNT --currency {currency}")
    return out


def floor_label(floor: WageFloor, currencies: dict[tuple[str, str], str], loop: str) -> str:
    """The floor a loop's workers are held to, as text: ``8.00 USD``; where its backends differ,
    each one's; ``not compared`` where its floor is in another currency than its pay."""
    backends = sorted(b for (lp, b) in currencies if lp == loop)
    if not backends:
        return f"{floor.amount:.2f} {floor.currency}"
    parts = []
    for b in backends:
        f = floor.for_backend(b)
        text = f"{f.amount:.2f} {f.currency}" if held_to(floor, b, currencies[(loop, b)]) is not None else "not compared"
        parts.append(text if len(backends) == 1 else f"{b} {text}")
    return ", ".join(parts)
