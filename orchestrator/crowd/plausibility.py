"""Plausible recorded time and pay: the one rule every backend applies before time is paid.

Some platforms report the seconds a person spent, and the pay follows from them (Label Studio's
``lead_time`` times an hourly wage). Those seconds are set by the client, so they are checked
here, in one place, for the Label Studio crowd backend, the Label Studio ML backend and the file
exchange alike:

- a value that is not a number, not finite (``NaN``, ``Infinity``), negative, or above the
  plausibility limit (``max_active_s``, default :data:`DEFAULT_MAX_ACTIVE_S`: one working day
  on one answer) is *quarantined*: recorded as 0 s, paid nothing, with the raw value in the
  reason, so a person can look at it; no other answer is held up by it;
- a missing value is 0 s (the platform did not measure), not a problem.

Amounts of money are bounded too: :data:`MAX_AMOUNT` per answer keeps every sum of the ledger's
integer micro-units far inside 64 bits (a larger amount is a typo or an attack, never pay).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from clicloop.orchestrator.errors import ConfigError

#: The default plausibility limit on the active seconds of one answer: a working day.
DEFAULT_MAX_ACTIVE_S = 8 * 3600.0
#: The largest amount (reward or fee, in currency units) one answer may carry.
MAX_AMOUNT = 1e9


@dataclass(frozen=True)
class TimedPay:
    """Seconds to record and pay to record for one answer; ``problem`` is the reason to
    quarantine it (then both are 0)."""

    active_s: float
    reward: Decimal  # exact, to the micro-unit
    problem: str | None = None


def check_limit(max_active_s: Any, field: str = "max_active_s") -> float:
    """The plausibility limit as a float; a :class:`ConfigError` naming ``field`` if it is not a
    positive, finite number of seconds."""
    if isinstance(max_active_s, bool) or not isinstance(max_active_s, (int, float)) \
            or not math.isfinite(max_active_s) or max_active_s <= 0:
        raise ConfigError(f"{field} must be a positive number of seconds (default {DEFAULT_MAX_ACTIVE_S:g}), "
                          f"not {max_active_s!r}", field=field)
    return float(max_active_s)


def time_problem(value: Any, field: str, max_active_s: float = DEFAULT_MAX_ACTIVE_S) -> str | None:
    """Why ``value`` (seconds a client reported in ``field``) is not plausible, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{field} is not a number of seconds: {show(value)}"
    if not math.isfinite(value):
        return f"{field} is not a finite number of seconds: {value!r}"
    if value < 0:
        return f"{field} is negative: {value!r} s"
    if value > max_active_s:
        return f"{field} {value:g} s is above the plausibility limit of {max_active_s:g} s (max_active_s)"
    return None


def timed_pay(value: Any, *, field: str, hourly_wage: float | Decimal = 0.0, per_answer: float | Decimal = 0.0,
              max_active_s: float = DEFAULT_MAX_ACTIVE_S) -> TimedPay:
    """Seconds and pay for one answer whose client reported ``value`` seconds in ``field``:
    ``per_answer + hourly_wage * seconds / 3600``, exact (half-even to the micro-unit), or a
    quarantine (0 s, no pay) with the reason."""
    from clicloop.orchestrator.ledger.money import MICRO, ZERO, exact

    problem = time_problem(value, field, max_active_s)
    if problem is not None:
        return TimedPay(0.0, ZERO, problem)
    seconds = float(value or 0.0)
    timed = exact(hourly_wage) * Decimal(repr(seconds)) / 3600
    return TimedPay(seconds, (exact(per_answer) + timed).quantize(MICRO, ROUND_HALF_EVEN))


def amount_problem(value: Any, field: str) -> str | None:
    """Why ``value`` cannot be recorded as an amount of money in ``field``, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return f"{field} is not a number: {show(value)}"
    if not math.isfinite(value) or value < 0:
        return f"{field} must be finite and not negative, got {value!r}"
    if value > MAX_AMOUNT:
        return f"{field} {value:g} is above {MAX_AMOUNT:g}, the most one answer can be paid"
    return None


def show(value: Any, limit: int = 40) -> str:
    """A short, safe rendering of a client's value for a reason (never the whole of it)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
