"""Database plumbing for the ledger: engines, SQLite pragmas, idempotent inserts, migrations."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError

from clicloop.orchestrator.credentials import redact_url, scrub
from clicloop.orchestrator.errors import LedgerError

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(url)
    except (SQLAlchemyError, ImportError, ValueError) as e:
        hint = " (PostgreSQL needs: pip install 'clicloop[postgres]')" if "postgres" in url else ""
        raise LedgerError(f"cannot use the ledger URL {redact_url(url)}: {scrub(str(e), url)}{hint}") from e
    if engine.dialect.name not in ("sqlite", "postgresql"):
        raise LedgerError(f"ledger databases must be SQLite or PostgreSQL, not {engine.dialect.name}")
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
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


def lock_for_migration(conn: Connection) -> None:
    """Serialise schema creation between processes opening one new ledger at once."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(7426115)"))
    else:
        conn.exec_driver_sql("SELECT 1")  # SQLite: busy_timeout serialises writers


def migrate(conn: Connection) -> None:
    """Bring the schema to the newest Alembic revision, inside ``conn``'s transaction."""
    from alembic import command
    from alembic.config import Config
    from alembic.util import CommandError

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    try:
        command.upgrade(cfg, "head")
    except CommandError as e:
        raise LedgerError(f"the ledger's schema is from a newer clicloop ({e}); upgrade clicloop to use it") from e


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


def micros(amount: float) -> int:
    from clicloop.orchestrator.ledger.schema import MICROS

    return round(amount * MICROS)



redact = redact_url  # the name other ledger modules import: one implementation, in credentials.py
