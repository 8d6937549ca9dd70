"""Checks of a built-in backend's numeric and money params, each error a
:class:`~clicloop.orchestrator.errors.BackendParamError` naming ``backend.params.<name>``, the
value given and what is expected (a share, a whole number, ...)."""

from __future__ import annotations

import math
import numbers
from decimal import Decimal
from typing import Any

import numpy as np

from clicloop.orchestrator.errors import BackendParamError
from clicloop.orchestrator.ledger import money


def check_number(who: str, name: str, value: Any, *, low: float | None = None, high: float | None = None,
                 open_low: bool = False, open_high: bool = False, whole: bool = False, hint: str = "") -> None:
    """Raise a BackendParamError unless ``value`` is a number (a whole one with ``whole``) in the range
    from ``low`` to ``high`` (either end excluded with ``open_low`` / ``open_high``)."""
    kind = "a whole number" if whole else "a number"
    ok = isinstance(value, numbers.Integral) if whole else isinstance(value, (numbers.Real, Decimal))  # numpy's too
    if isinstance(value, (bool, np.bool_)) or not ok or not math.isfinite(value):
        raise BackendParamError(f"{who}: backend.params.{name} must be {kind}, not {value!r}{hint}",
                                field=f"backend.params.{name}")
    below = low is not None and (value <= low if open_low else value < low)
    above = high is not None and (value >= high if open_high else value > high)
    if below or above:
        raise BackendParamError(f"{who}: backend.params.{name} must be {_range(low, high, open_low, open_high)}, "
                                f"not {value!r}{hint}", field=f"backend.params.{name}")


def check_money(who: str, name: str, value: Any) -> None:
    """Raise a BackendParamError unless ``value`` is an exact, non-negative amount of money."""
    field = f"backend.params.{name}"
    money.param(value, f"{who}: {field}", lambda message: BackendParamError(message, field=field))


def _range(low: float | None, high: float | None, open_low: bool, open_high: bool) -> str:
    if low is not None and high is not None:
        return (f"{'above' if open_low else 'at least'} {low:g} and {'below' if open_high else 'at most'} {high:g}")
    if low is not None:
        return f"{'above' if open_low else 'at least'} {low:g}"
    return f"{'below' if open_high else 'at most'} {high:g}"
