"""Opening a ledger for reading only, and the filters every view takes.

The dashboard never writes: SQLite files open with ``mode=ro`` (and ``PRAGMA query_only``), and
PostgreSQL sessions are set to ``READ ONLY`` transactions, so even a bug cannot change the ledger.
``Ledger.open()`` is not used because it migrates the schema (a write).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from clicloop.orchestrator.errors import ConfigError, LedgerError
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.db import redact


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
        day += dt.timedelta(days=1)
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp()


def read_only_engine(url: str) -> Engine:
    """An engine that can only read the ledger at ``url`` (SQLite or PostgreSQL)."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :].split("?", 1)[0]
        if path in ("", ":memory:"):
            raise LedgerError("the dashboard reads a ledger file; an in-memory SQLite ledger has nothing to show")
        file = Path(path).resolve()
        if not file.is_file():
            raise LedgerError(f"no ledger at {file}; run a loop first (e.g. clicloop quickstart)")
        engine = create_engine(f"sqlite:///file:{quote(str(file))}?mode=ro&uri=true")
        event.listen(engine, "connect", _sqlite_read_only)
    elif url.startswith("postgresql"):
        try:
            engine = create_engine(url)
        except (SQLAlchemyError, ImportError, ValueError) as e:
            raise LedgerError(f"cannot use the ledger URL {redact(url)}: {e}") from e
        event.listen(engine, "connect", _pg_read_only)
    else:
        raise LedgerError(f"ledger databases must be SQLite or PostgreSQL URLs, not {redact(url)}")
    _check_ledger(engine, url)
    return engine


def _sqlite_read_only(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA query_only=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _pg_read_only(dbapi_conn: Any, _record: Any) -> None:
    autocommit = dbapi_conn.autocommit
    dbapi_conn.autocommit = True
    cur = dbapi_conn.cursor()
    cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    cur.close()
    dbapi_conn.autocommit = autocommit


def _check_ledger(engine: Engine, url: str) -> None:
    try:
        with engine.connect() as conn:
            names = set(inspect(conn).get_table_names())
            app = conn.execute(select(s.meta.c.value).where(s.meta.c.key == "app")).scalar() if s.meta.name in names else None
    except SQLAlchemyError as e:
        engine.dispose()
        raise LedgerError(f"cannot read the ledger at {redact(url)}: {getattr(e, 'orig', e)}") from e
    if app != s.APP:
        engine.dispose()
        raise LedgerError(f"{redact(url)} is not a clicloop ledger (no {s.meta.name} table written by clicloop)")


class ReadOnlyLedger(Ledger):
    """A :class:`Ledger` whose ``open()`` neither migrates nor writes: for the report functions
    (``build_report``, ``labor_card``) that take a ledger and only read it."""

    def open(self) -> ReadOnlyLedger:
        self.engine_ = read_only_engine(self.url)
        self.salt_ = ""
        return self


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
