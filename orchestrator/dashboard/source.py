"""The filters every view takes, and the loops the dashboard lists.

The dashboard never writes: it opens the ledger with
:func:`clicloop.orchestrator.ledger.readonly.read_only_engine` (re-exported here, with
:class:`~clicloop.orchestrator.ledger.readonly.ReadOnlyLedger`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, select

from clicloop.orchestrator.errors import ConfigError
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.readonly import ReadOnlyLedger, read_only_engine

__all__ = ["Filters", "LoopInfo", "ReadOnlyLedger", "loop_infos", "read_only_engine"]


@dataclass(frozen=True)
class Filters:
    """What a view covers. ``None`` means no restriction.

    - ``loop``: one loop by name.
    - ``backend``: one crowd backend (answers, pay and workers of that backend only).
    - ``model_version``: the work behind one model version, as its labor card counts it: its
      loop, rounds before the version's round (the answers its training labels came from).
    - ``date_from`` / ``date_to``: ISO dates (UTC, inclusive) on the time each fact was recorded.
    """

    loop: str | None = None
    backend: str | None = None
    model_version: str | None = None
    date_from: str | None = None
    date_to: str | None = None

    def time_range(self) -> tuple[float | None, float | None]:
        """The date filters as epoch seconds ``[start, end)``."""
        return _epoch(self.date_from, "date_from"), _epoch(self.date_to, "date_to", end=True)

    def query(self, **extra: Any) -> str:
        """The filters as a URL query string (empty values left out)."""
        items = {**{k: v for k, v in self.__dict__.items() if v}, **{k: v for k, v in extra.items() if v is not None}}
        return "&".join(f"{k}={quote(str(v))}" for k, v in items.items())

    def with_(self, **changes: Any) -> Filters:
        return replace(self, **changes)


def _epoch(value: str | None, field: str, *, end: bool = False) -> float | None:
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError as e:
        raise ConfigError(f"{field}={value!r} is not a date; use YYYY-MM-DD", field=field) from e
    if end:
        if day == dt.date.max:  # through the last day there is: no upper bound
            return None
        day += dt.timedelta(days=1)
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp()


@dataclass(frozen=True)
class LoopInfo:
    """A loop as the dashboard lists it: ``baseline`` for a random-sampling loop, ``review`` for
    the post-deployment review work of a deployment (``<deployment>:review``), which has no
    learning curve. (The ledger keeps a loop's config without its stop rules: targets and budgets
    come from config files, ``clicloop dashboard --config``.)"""

    name: str
    strategy: str
    baseline: bool
    created_at: float
    review: bool = False


REVIEW_SUFFIX = ":review"


def loop_infos(engine: Engine) -> list[LoopInfo]:
    """Every loop, oldest first, with its strategy read from the stored config."""
    lp = s.loops.c
    with engine.connect() as conn:
        rows = conn.execute(select(lp.name, lp.config_json, lp.created_at).order_by(lp.created_at, lp.name)).all()
    out = []
    for name, config_json, created in rows:
        try:
            cfg = json.loads(config_json)
        except json.JSONDecodeError:
            cfg = {}
        cfg = cfg if isinstance(cfg, dict) else {}
        strategy = str((cfg.get("strategy") or {}).get("name") or "?") if isinstance(cfg.get("strategy"), dict) else "?"
        review = name.endswith(REVIEW_SUFFIX) or cfg.get("kind") == "post-deployment review"
        out.append(LoopInfo(name, "review" if review else strategy,
                            not review and (strategy == "random" or name.endswith("-random")), float(created), review))
    return out
