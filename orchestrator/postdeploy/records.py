"""The production-prediction record and its validation.

A record is what a deployed model reports for one request: its id, the input (text or feature
vector), the predicted label, a confidence or class probabilities, the model version, the time,
and optional user feedback (thumbs-down, "that's not what I asked", a rephrasing).
"""

from __future__ import annotations

import json
import math
import time
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from clicloop.orchestrator.ledger.db import unstorable

FEEDBACK = ("thumbs_down", "not_what_i_asked", "rephrased")
OUT_OF_SCOPE = "out_of_scope"
EARLIEST = 946_684_800.0  # 2000-01-01T00:00:00Z: the earliest prediction time accepted
FUTURE_SLACK_S = 86_400.0  # and at most a day ahead of this machine's clock (clock skew, time zones done wrong)
MAX_DEPTH = 32  # JSON nesting of one record (a record needs 3)


class PredictionRecord(BaseModel):
    """One production prediction. ``confidence`` defaults to the largest probability."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # NaN is no confidence

    id: str = Field(min_length=1, max_length=200)
    model_version: str = Field(min_length=1, max_length=200)
    predicted_label: str = Field(min_length=1, max_length=1000)
    text: str | None = None
    features: list[float] | None = None
    confidence: float | None = Field(None, ge=0.0, le=1.0)
    probabilities: dict[str, float] | None = None
    time: float  # epoch seconds (an ISO-8601 string is accepted and converted)
    feedback: Literal["thumbs_down", "not_what_i_asked", "rephrased"] | None = None
    rephrasing: str | None = None

    @field_validator("time", mode="before")
    @classmethod
    def _time(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError as e:
                raise ValueError(f"time {value!r} is neither epoch seconds nor ISO-8601") from e
        return value

    @field_validator("time")
    @classmethod
    def _in_range(cls, value: float) -> float:
        return check_time(value)

    @field_validator("id", "model_version", "predicted_label", "text", "rephrasing")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        if value is not None and unstorable(value):
            raise ValueError("holds a NUL character or a lone surrogate (\\u0000, \\ud800-\\udfff), which no database "
                             "stores as text; drop or replace it")
        return value

    @field_validator("features")
    @classmethod
    def _finite(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and not all(math.isfinite(v) for v in value):
            raise ValueError("features must be finite numbers")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PredictionRecord:
        if self.text is None and self.features is None:
            raise ValueError("give the input as 'text' or 'features'")
        if self.probabilities is not None:
            p = self.probabilities
            if not p or not all(math.isfinite(v) and 0 <= v <= 1 for v in p.values()):
                raise ValueError("probabilities must map labels to numbers in [0, 1]")
            if abs(sum(p.values()) - 1) > 1e-3:
                raise ValueError(f"probabilities sum to {sum(p.values()):.4f}, not 1")
            if self.predicted_label not in p:
                raise ValueError(f"predicted_label {self.predicted_label!r} has no probability")
        if self.feedback == "rephrased" and not self.rephrasing:
            raise ValueError("feedback 'rephrased' needs the 'rephrasing'")
        return self

    @property
    def score(self) -> float | None:
        """The confidence, or the predicted label's probability."""
        if self.confidence is not None:
            return self.confidence
        if self.probabilities is not None:
            return self.probabilities[self.predicted_label]
        return None

    @property
    def flagged(self) -> bool:
        """The user said the answer was wrong (any feedback counts)."""
        return self.feedback is not None


def parse_record(raw: Any) -> PredictionRecord | str:
    """A validated record, or the reason it was rejected (never raises on bad input)."""
    if isinstance(raw, PredictionRecord):
        return raw
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except RecursionError:
            return f"JSON nested too deeply: a record nests at most {MAX_DEPTH} levels"
        except (ValueError, UnicodeDecodeError) as e:
            return f"not JSON: {e}"
    if not isinstance(raw, dict):
        return f"a record must be a JSON object, not {type(raw).__name__}"
    if too_deep(raw, MAX_DEPTH):
        return f"JSON nested too deeply: a record nests at most {MAX_DEPTH} levels"
    try:
        return PredictionRecord.model_validate(raw)
    except ValidationError as e:
        return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'record'}: {err['msg']}" for err in e.errors()[:5])


def day_of(epoch: float) -> str:
    """The UTC day of an epoch second, ``YYYY-MM-DD``."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d")


def time_range(now: float | None = None) -> tuple[float, float]:
    """The prediction times accepted: from 2000-01-01 to a day after ``now`` (epoch seconds)."""
    return EARLIEST, (time.time() if now is None else now) + FUTURE_SLACK_S


def check_time(value: float) -> float:
    """``value`` if it is a plausible prediction time in epoch seconds; else a ValueError that
    says what was wrong (milliseconds, most often)."""
    low, high = time_range()
    if math.isfinite(value) and low <= value <= high:
        return value
    hint = ""
    if math.isfinite(value) and low <= value / 1000 <= high:
        hint = f"; it looks like epoch milliseconds: send {value / 1000:.3f} (seconds)"
    raise ValueError(f"{value!r} is not an epoch second between 2000-01-01 and a day from now{hint}")


def too_deep(value: Any, limit: int) -> bool:
    """True if lists and objects in ``value`` nest deeper than ``limit`` (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list, tuple)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False
