"""Money leaves the ledger exact: one convention for every view (report, JSON, CSV, HTML,
dashboard, labor card).

- The ledger stores integer micro-units (1e-6 of the currency) per payment; sums are exact in SQL.
- In Python, an amount is a :class:`decimal.Decimal` with six decimal places
  (:func:`from_micros`); a rate (money per hour, per point) is a Decimal rounded half-even to the
  micro-unit (:func:`ratio`). Never a float.
- In JSON, every money figure is a string of that Decimal (``"2.400000"``), and the object that
  holds it names its ``currency``; :func:`json_default` is the one encoder (``json.dumps(...,
  default=json_default)``).
- Text rounds to cents at the edge only (:func:`fmt`).

docs/ledger.md ("How each number is defined") says the same for people.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal
from typing import Any

MICROS = 1_000_000
MICRO = Decimal("0.000001")
CENT = Decimal("0.01")
ZERO = Decimal("0.000000")


def from_micros(micros: Any) -> Decimal:
    """An exact amount from a sum of micro-units (``None`` counts as 0; PostgreSQL sums arrive as Decimal)."""
    return Decimal(int(micros or 0)).scaleb(-6).quantize(MICRO)


def to_micros(amount: Decimal | float | int | str) -> int:
    """Micro-units of an amount; a float is read by its shortest repr (0.1 -> 100000, not 99999)."""
    value = amount if isinstance(amount, Decimal) else Decimal(repr(amount) if isinstance(amount, float) else str(amount))
    return int((value * MICROS).to_integral_value(ROUND_HALF_EVEN))


def parse(value: Any, what: str) -> Decimal:
    """A money amount given by a person (a config's ``stop.max_cost``, a backend's ``reward``): an
    int, a float (read by its shortest repr: ``0.1`` is ``0.1``), a decimal string or a Decimal,
    finite, with at most six decimal places; a ValueError naming ``what`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ValueError(f"{what} must be an amount of money (e.g. 10.50), not {value!r}")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except ArithmeticError as e:  # decimal.InvalidOperation: "ten euros"
        raise ValueError(f"{what} must be an amount of money (e.g. 10.50), not {value!r}") from e
    if not amount.is_finite():
        raise ValueError(f"{what} must be a finite amount of money, not {value!r}")
    try:
        kept = amount.quantize(MICRO, ROUND_HALF_EVEN)
    except ArithmeticError as e:  # more digits than Decimal's 28
        raise ValueError(f"{what} is too large an amount of money ({value!r})") from e
    if amount != kept:
        raise ValueError(f"{what} has more than six decimal places ({value!r}); money is kept to the micro-unit")
    return kept


def share(amount: Decimal, rate: float) -> Decimal:
    """``rate`` (a float, read by its repr: a platform's fee rate) of an exact ``amount``, half-even
    to the micro-unit: the fee on a reward."""
    return (amount * Decimal(repr(float(rate)))).quantize(MICRO, ROUND_HALF_EVEN)


def param(value: Any, what: str, error: type[Exception]) -> Decimal:
    """A backend's money parameter (``reward``) as an exact, non-negative amount; ``error`` (the
    backend's error type) naming ``what`` otherwise."""
    try:
        amount = parse(value, what)
    except ValueError as e:
        raise error(str(e)) from e
    if amount < 0:
        raise error(f"{what} must not be negative, got {value!r}")
    return amount


def exact(value: Decimal | float | int | str) -> Decimal:
    """Any amount as a six-place Decimal (a float through its shortest repr; a config's ``max_cost: 10.0``)."""
    return from_micros(to_micros(value))


def ratio(amount: Decimal | None, per: float | int | None) -> Decimal | None:
    """``amount / per`` (money per hour, per point, per answer), rounded to the micro-unit; None when
    ``per`` is not positive or either side is missing."""
    if amount is None or per is None or not per > 0 or not math.isfinite(per):
        return None
    return (amount / Decimal(repr(float(per)))).quantize(MICRO, ROUND_HALF_EVEN)


def estimate(value: float | None) -> Decimal | None:
    """A forecast's money (a model's estimate, not a sum of payments) as a Decimal to the micro-unit;
    None for a missing or unbounded value."""
    if value is None or not math.isfinite(value):
        return None
    return Decimal(repr(float(value))).quantize(MICRO, ROUND_HALF_EVEN)


def ceil_cents(amount: Decimal) -> Decimal:
    """Rounded UP to the cent (back-pay never leaves a worker just below the floor)."""
    return amount.quantize(CENT, ROUND_CEILING).quantize(MICRO)


def fmt(amount: Decimal | None, currency: str | None = None, digits: int = 2) -> str:
    """An amount as text, rounded half-even at the edge: ``12.35 EUR``; ``-`` when missing."""
    if amount is None:
        return "-"
    text = f"{amount.quantize(Decimal(1).scaleb(-digits), ROUND_HALF_EVEN):,}"
    return f"{text} {currency}" if currency else text


def percentile(values: list[Decimal], q: float) -> Decimal:
    """The ``q``-th percentile (0-100, linear interpolation as NumPy's default) of Decimal amounts,
    in Decimal arithmetic, to the micro-unit."""
    ordered = sorted(values)
    pos = Decimal(repr(float(q))) / 100 * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return (ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)).quantize(MICRO, ROUND_HALF_EVEN)


def json_default(value: Any) -> Any:
    """The JSON encoder's fallback: a Decimal becomes its string (exact), a NumPy scalar its Python
    value; anything else is an error."""
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "item") and hasattr(value, "dtype"):  # a NumPy scalar (a count, a metric): its Python value
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
