"""The config's strict base and its sections about the people who label: the wage floor,
adaptive redundancy, sensitive items, gold questions, relabeling and content warnings
(:mod:`clicloop.orchestrator.config` assembles them into :class:`~clicloop.orchestrator.config.Config`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # no field takes NaN or infinity

    @model_validator(mode="before")
    @classmethod
    def _no_bool_numbers(cls, data: Any) -> Any:
        """``batch_size: true`` is a mistake, not 1: a number field refuses true/false (pydantic
        would read them as 1 and 0)."""
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                value = data.get(name)
                if isinstance(value, bool) and _numeric(field.annotation):
                    raise ValueError(f"{name} is a number, not {str(value).lower()}")
        return data


def _numeric(annotation: Any) -> bool:
    """Whether a field's type is a number (int, float, Decimal, or one of them or None), not bool."""
    import typing

    kinds = typing.get_args(annotation) or (annotation,)
    return bool(kinds) and all(k in (int, float, Decimal, type(None)) for k in kinds) and any(k is not type(None) for k in kinds)


def _money(value: Any, what: str) -> Any:
    """A money amount from a config, exact (``12.02`` is 12.020000, never a float's 12.0199999...)."""
    from clicloop.orchestrator.ledger.money import parse

    return None if value is None else parse(value, what)


class Floor(_Strict):
    amount: Decimal = Field(..., ge=0, description="hourly wage (exact: a Decimal)")
    currency: str

    @field_validator("amount", mode="before")
    @classmethod
    def _exact_money(cls, value: Any) -> Any:
        return _money(value, "wage_floor.per_backend.amount")


class WageFloor(_Strict):
    """The hourly wage every worker should earn on their *total* time, unpaid time included."""

    amount: Decimal = Field(Decimal("12.02"), ge=0, description="gross hourly wage (default: France's SMIC, 2026; exact: a Decimal)")
    currency: str = "EUR"
    per_backend: dict[str, Floor] = Field(default_factory=dict, description="e.g. prolific: {amount: 8.0, currency: USD}")
    price_rewards: bool = Field(False, description="price each round's reward from the mean task time (unpaid time and qualification tests included) so the floor holds")
    strict: bool = Field(False, description="stop dispatching while a worker on the backend is below the floor")

    @field_validator("amount", mode="before")
    @classmethod
    def _exact_money(cls, value: Any) -> Any:
        return _money(value, "wage_floor.amount")

    def for_backend(self, name: str) -> Floor:
        return self.per_backend.get(name) or Floor(amount=self.amount, currency=self.currency)


class Adaptive(_Strict):
    """Adaptive redundancy: ask for one more answer while an item's answers disagree."""

    max_answers: int = Field(3, ge=2, description="never more answers per item than this")
    agreement: float = Field(0.75, gt=0, le=1, description="stop asking once the top label has this share of the votes")


def _compiles(patterns: list[str]) -> list[str]:
    import re

    for p in patterns:
        try:
            re.compile(p)
        except re.error as e:
            raise ValueError(f"pattern {p!r} is not a valid regular expression: {e}") from e
    return patterns


class Sensitive(_Strict):
    """Which items count as personal or sensitive: they only go to confidential backends."""

    detectors: list[Literal["email", "phone", "iban", "card"]] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list, description="extra regular expressions")

    _valid = field_validator("patterns")(_compiles)


class Gold(_Strict):
    """Gold questions: items with a known answer (the seed labels) mixed into every round, to
    estimate each worker's accuracy. A gold item's answers are judged once it has
    ``min_answers``: when at least ``dispute_share`` of them disagree with the known answer, the
    item is unclear (instructions or answer key), so every answer on it is accepted and paid (an
    answer rejected before is accepted after all and paid back) and the item is no longer used as gold."""

    per_round: int = Field(1, ge=1, description="gold items mixed into each round (each asked loop.redundancy times)")
    min_answers: int = Field(3, ge=1, description="answers on a gold item before they are judged")
    dispute_share: float = Field(0.5, gt=0, le=1, description="this share disagreeing with the key = unclear item, pay all")
    reject_failed: bool = Field(False, description="reject (with the reason) wrong answers on undisputed gold and withhold "
                                "their pay (given back if the item is disputed later)")


class Relabel(_Strict):
    """Relabel or label new: labeled items whose consensus confidence is below ``below`` compete
    with new items for the batch; the strategy's score decides, and a chosen item gets one more
    answer."""

    below: float = Field(0.75, gt=0, le=1, description="consensus confidence under which an item may get one more answer")
    max_answers: int = Field(5, ge=2, description="never more answers per item than this")


class ContentWarning(_Strict):
    """Disturbing content: flagged items carry a warning shown before the task, workers may opt
    out (an opt-out is paid for the time spent and never penalised), and backends that choose
    workers keep each worker under ``exposure_cap_per_day`` such tasks."""

    text: str = Field("This item may contain disturbing content. You may skip it without any penalty.", min_length=10)
    patterns: list[str] = Field(default_factory=list, description="regular expressions over the text that flag an item")
    exposure_cap_per_day: int | None = Field(None, ge=1, description="flagged tasks per worker and day, at most")

    _valid = field_validator("patterns")(_compiles)
