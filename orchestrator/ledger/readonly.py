"""Opening a ledger for reading only: the dashboard, ``clicloop report``, ``ledger verify``,
``ledger export`` and ``labor-card`` never write, so a ledger they cannot write still opens.

SQLite files open with ``mode=ro`` (and ``PRAGMA query_only``). A WAL-mode file in a folder
this process cannot write (no ``-shm`` file can be made) opens ``immutable`` instead, which is
safe only because no writer can be at work there: a writer keeps a ``-wal`` file beside the
ledger, and when one exists the open fails with a message instead. PostgreSQL sessions are set to
``READ ONLY`` transactions. ``Ledger.open()`` is not used because it migrates the schema (a write).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from clicloop.orchestrator.credentials import redact_url, scrub
from clicloop.orchestrator.errors import LedgerError
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.store import Ledger


def require_ledger(url: str, first: str = "run a loop first (e.g. clicloop quickstart)") -> None:
    """Refuse a ledger that does not exist yet, for a command that reads one (or writes into one
    that must hold something): opening it would create an empty ledger, folders included."""
    if url.startswith("sqlite:///") and _sqlite_path(url) in ("", ":memory:"):
        return  # an in-memory ledger: nothing on disk to create
    read_only_engine(url, first).dispose()  # refuses a missing file, or a database without a clicloop ledger


def _sqlite_path(url: str) -> str:
    return url[len("sqlite:///") :].split("?", 1)[0]


def read_only_engine(url: str, first: str = "run a loop first (e.g. clicloop quickstart)") -> Engine:
    """An engine that can only read the ledger at ``url`` (SQLite or PostgreSQL); ``first``: what
    to do when there is none yet."""
    if url.startswith("sqlite:///"):
        path = _sqlite_path(url)
        if path in ("", ":memory:"):
            raise LedgerError("a read-only command reads a ledger file; an in-memory SQLite ledger has nothing to show")
        file = Path(path).resolve()
        if not file.is_file():
            raise LedgerError(f"no ledger at {file}; {first}")
        return _sqlite_engine(file, url)
    if url.startswith("postgresql"):
        try:
            engine = create_engine(url, pool_pre_ping=True)  # a server restart drops pooled connections (the dashboard's)
        except (SQLAlchemyError, ImportError, ValueError) as e:
            raise LedgerError(f"cannot use the ledger URL {redact_url(url)}: {scrub(str(e), url)}") from e
        event.listen(engine, "connect", _pg_read_only)
        _check_ledger(engine, url)
        return engine
    hint = "; write postgresql+psycopg://... (SQLAlchemy's name for PostgreSQL)" if url.startswith("postgres:") else \
        " (sqlite:///path/to/ledger.db or postgresql+psycopg://user@host/db)"
    raise LedgerError(f"ledger databases must be SQLite or PostgreSQL URLs, not {redact_url(url)}{hint}")


def _sqlite_engine(file: Path, url: str) -> Engine:
    engine = create_engine(f"sqlite:///file:{quote(str(file))}?mode=ro&uri=true")
    event.listen(engine, "connect", _sqlite_read_only)
    try:
        _check_ledger(engine, url)
        return engine
    except LedgerError as e:
        if "readonly database" not in str(e) and "unable to open" not in str(e):
            raise
        if Path(f"{file}-wal").exists():
            raise LedgerError(f"cannot read {file}: a writer's {file.name}-wal file is beside it, and this process "
                              "cannot write the folder to share it; read it as the user who writes it") from e
    engine = create_engine(f"sqlite:///file:{quote(str(file))}?mode=ro&immutable=1&uri=true")
    event.listen(engine, "connect", _sqlite_read_only)
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
        raise LedgerError(f"cannot read the ledger at {redact_url(url)}: {scrub(str(getattr(e, 'orig', e)), url)}") from e
    if app != s.APP:
        engine.dispose()
        raise LedgerError(f"{redact_url(url)} is not a clicloop ledger (no {s.meta.name} table written by clicloop)")


class ReadOnlyLedger(Ledger):
    """A :class:`Ledger` whose ``open()`` neither migrates nor writes: for the report functions
    (``build_report``, ``labor_card``, ``verify``, ``export``) that take a ledger and only read it.
    It cannot record workers (no pseudonym key is looked up)."""

    def open(self) -> ReadOnlyLedger:
        self.engine_ = read_only_engine(self.url)
        return self

    def pseudonym(self, backend: str, raw_worker_id: str) -> str:
        raise LedgerError(f"{redact_url(self.url)} is open read-only; it cannot record workers")
