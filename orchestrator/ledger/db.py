"""Database plumbing for the ledger: engines, SQLite pragmas, idempotent inserts, migrations."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from clicloop.orchestrator.credentials import redact_url, scrub
from clicloop.orchestrator.errors import LedgerError

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, *, schema_changes: bool = False) -> Engine:
    """An engine for the ledger at ``url``. ``schema_changes``: a one-connection engine whose
    transactions take SQLite's write lock at once (``BEGIN IMMEDIATE``) and hold DDL too, so a
    ledger is created or migrated whole or not at all (Python's sqlite3 commits DDL on its own)."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    try:
        ping = {} if url.startswith("sqlite") else {"pool_pre_ping": True}  # a server restart drops pooled connections
        engine = create_engine(url, poolclass=NullPool) if schema_changes else create_engine(url, **ping)
    except (SQLAlchemyError, ImportError, ValueError) as e:
        hint = " (PostgreSQL needs: pip install 'clicloop[postgres]')" if "postgres" in url else ""
        raise LedgerError(f"cannot use the ledger URL {redact_url(url)}: {scrub(str(e), url)}{hint}") from e
    if engine.dialect.name not in ("sqlite", "postgresql"):
        raise LedgerError(f"ledger databases must be SQLite or PostgreSQL, not {engine.dialect.name}")
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        if schema_changes:  # SQLAlchemy's recipe for transactional DDL on pysqlite
            event.listen(engine, "connect", _sqlite_manual_transactions)
            event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    event.listen(engine, "handle_error", _disk_full)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # durable against a killed process; readers never block
    cur.execute("PRAGMA synchronous=NORMAL")
    # Checkpoint every 10,000 WAL pages (40 MiB), not SQLite's default 1,000: index pages that many
    # commits touch are written back once per checkpoint (benchmarks/ledger_bench.py measures it).
    cur.execute("PRAGMA wal_autocheckpoint=10000")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_manual_transactions(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # the driver emits no BEGIN/COMMIT of its own; the "begin" event does


def _disk_full(context: Any) -> None:
    """A write the disk has no room for becomes a LedgerError naming the ledger (the transaction
    is rolled back: nothing is half-written). SQLite says "database or disk is full", or "disk I/O
    error" when not even its shared-memory file fits: then the disk's free space tells."""
    error, engine = str(context.original_exception), context.engine
    if "database or disk is full" in error or ("disk I/O error" in error and _no_room(engine)):
        url = redact(str(engine.url)) if engine is not None else "the ledger"
        raise LedgerError(f"cannot write to the ledger at {url}: the disk is full; nothing was half-written (the "
                          "transaction was rolled back). Free space on that disk, then run the same command again: "
                          "it resumes from the ledger.") from context.original_exception


def _no_room(engine: Engine | None) -> bool:
    """A SQLite ledger's disk has less than 1 MiB free."""
    import shutil

    if engine is None or engine.dialect.name != "sqlite" or not engine.url.database:
        return False
    try:
        return shutil.disk_usage(Path(engine.url.database).resolve().parent).free < 1 << 20
    except OSError:
        return False


def lock_for_migration(conn: Connection) -> None:
    """Serialise schema creation between processes opening one new ledger at once (SQLite: the
    ``BEGIN IMMEDIATE`` of a ``schema_changes`` engine already holds the write lock)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(7426115)"))


def _alembic_config(conn: Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def migrate(conn: Connection) -> None:
    """Bring the schema to the newest Alembic revision, inside ``conn``'s transaction."""
    from alembic import command
    from alembic.util import CommandError

    try:
        command.upgrade(_alembic_config(conn), "head")
    except CommandError as e:
        raise LedgerError(f"the ledger's schema is from a newer clicloop ({e}); upgrade clicloop to use it") from e


def revisions() -> set[str]:
    """Every migration's revision id (what ``alembic_version`` may hold in a clicloop ledger)."""
    from alembic.script import ScriptDirectory

    return {script.revision for script in ScriptDirectory.from_config(_alembic_config()).walk_revisions()}


def unstorable(text: str) -> bool:
    """Whether ``text`` holds what no database keeps as text: a NUL (PostgreSQL refuses it) or a
    lone surrogate (UTF-8 cannot encode it)."""
    return "\x00" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def storable(text: str) -> str:
    """``text`` with NUL and lone surrogates written as escapes (what no database column refuses)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def insert_ignore(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows, skipping those whose primary key exists: the ledger's idempotent write."""
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    for chunk in chunks(rows, 1000):
        conn.execute(insert(table).on_conflict_do_nothing(), list(chunk))


def insert_tuples(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]], *,
                   returning: bool = False) -> set[Any] | None:
    """``insert_ignore`` for rows given as tuples in ``columns`` order, straight to the driver:
    the same INSERT ... ON CONFLICT DO NOTHING, without SQLAlchemy's per-row work. With
    ``returning`` (PostgreSQL only), the first column's values of the rows actually inserted."""
    if not rows:
        return set() if returning else None
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    if conn.dialect.name != "postgresql":  # SQLite: executemany is one prepared statement, run in-process
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        conn.exec_driver_sql(f"INSERT INTO {quote(table.name)} ({names}) VALUES ({', '.join([mark] * len(columns))}) "
                             "ON CONFLICT DO NOTHING", list(rows))
        return None
    # PostgreSQL: one statement over column arrays (unnest), so the rows cost neither a round trip
    # each nor a parameter each (psycopg parses every placeholder of a query on the client)
    arrays = ", ".join(f"%s::{table.c[c].type.compile(dialect=conn.dialect)}[]" for c in columns)
    tail = f" RETURNING {quote(columns[0])}" if returning else ""
    result = conn.exec_driver_sql(f"INSERT INTO {quote(table.name)} ({names}) SELECT * FROM unnest({arrays}) "
                                  f"ON CONFLICT DO NOTHING{tail}", tuple(list(col) for col in zip(*rows)))
    return {r[0] for r in result} if returning else None


def has_table(conn: Connection, table: Table) -> bool:
    """Whether the ledger has ``table``: a ledger of an earlier schema, opened by a read-only
    command (which never migrates), lacks the tables later migrations add."""
    from sqlalchemy import inspect

    return inspect(conn).has_table(table.name)


def chunks(seq: Sequence[Any], n: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def num(value: Any) -> float:
    """A finite, non-negative number, or 0.0 (the loop quarantines such answers with the raw values)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return 0.0
    return v if math.isfinite(v) and v >= 0 else 0.0


def amount_micros(amount: Any) -> int:
    """An answer's or a task's amount in micro-units: a Decimal exactly (half-even to the
    micro-unit), a float as the ledger always rounded it (``round(amount * 1e6)``); 0 for a
    missing, non-finite or negative amount (the loop quarantines such answers, never pays them)."""
    from decimal import Decimal

    if isinstance(amount, Decimal):
        from clicloop.orchestrator.ledger.money import to_micros

        return to_micros(amount) if amount.is_finite() and amount >= 0 else 0
    return micros(num(amount))


def micros(amount: float) -> int:
    from clicloop.orchestrator.ledger.schema import MICROS

    return round(amount * MICROS)



redact = redact_url  # the name other ledger modules import: one implementation, in credentials.py
