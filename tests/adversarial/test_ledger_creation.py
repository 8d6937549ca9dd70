"""Creating a ledger is atomic: a SIGKILL after any statement of the creation leaves either no
ledger or a complete one, two processes creating one SQLite ledger at once both get it, and a
half-made SQLite ledger left by an older clicloop is completed rather than refused forever
(issue #21, "Ledger and runners")."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from clicloop.orchestrator.errors import LedgerError
from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.verify import verify
from tests.conftest import PG_BASE

ROOT = Path(__file__).resolve().parents[2]


def creator(url: str, mode: str, arg: str, **kw: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.orchestrator.ledger.creator", url, mode, arg], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def assert_complete(url: str) -> None:
    """The ledger opens, is clicloop's, matches the declared schema and verifies."""
    with Ledger(url) as ledger:
        with ledger.engine_.connect() as conn:
            assert conn.execute(text("SELECT value FROM clicloop_meta WHERE key = 'app'")).scalar() == s.APP
            diff = [d for d in compare_metadata(MigrationContext.configure(conn), s.metadata)
                    if not (d[0] == "remove_table" and d[1].name == "alembic_version")]
        assert diff == []
        assert verify(ledger) == [] and ledger.loops() == []


@pytest.fixture
def pg_schemas(pg_schema: str) -> Iterator:
    """Fresh PostgreSQL schemas on demand (one per kill point), dropped afterwards."""
    engine, made = create_engine(PG_BASE), []

    def make() -> str:
        name = f"{pg_schema}_c{len(made)}"
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {name}"))
        made.append(name)
        return f"{PG_BASE}?options=-csearch_path%3D{name}"

    yield make
    with engine.begin() as conn:
        for name in made:
            conn.execute(text(f"DROP SCHEMA {name} CASCADE"))
    engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("backend,stride", [("sqlite", 1), ("postgresql", 4)])
def test_a_kill_after_any_statement_of_the_creation_leaves_no_ledger_or_a_complete_one(backend, stride, tmp_path, request):
    killed = 0
    for n in range(1, 400, stride):
        url = f"sqlite:///{tmp_path / f'l{n}.db'}" if backend == "sqlite" else request.getfixturevalue("pg_schemas")()
        proc = creator(url, "kill", str(n))
        out, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            assert "done" in out, err
            assert_complete(url)
            break
        assert proc.returncode == -signal.SIGKILL, err
        killed += 1
        tables = table_names(url)
        complete = s.meta.name in tables and {t.name for t in s.TABLES} <= tables
        assert not tables or complete, f"a kill after statement {n} left a half-made ledger: {sorted(tables)}"
        assert_complete(url)  # and opening it again gives a working ledger, whatever the kill left
    else:
        pytest.fail("the creation never finished")
    assert killed >= 40 // stride  # the creation really was interrupted at every boundary


def test_two_processes_creating_one_sqlite_ledger_at_once_both_get_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    first = creator(url, "pause", "CREATE TABLE clicloop_meta", stdin=subprocess.PIPE)
    assert first.stdout.readline().strip() == "opening"
    assert first.stdout.readline().strip() == "paused", first.stderr.read()
    second = creator(url, "pause", "never sent", stdin=subprocess.DEVNULL)
    try:
        # the second waits for the first's creation (it must not refuse a ledger being made) ...
        second.wait(timeout=3)
    except subprocess.TimeoutExpired:
        pass
    first.stdin.write("go\n")
    first.stdin.flush()
    for proc in (first, second):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "done" in out
    assert_complete(url)


def _half_made(path: Path, revision: str | None, tables: list) -> str:
    """What an older clicloop left when killed while creating a SQLite ledger: Alembic's table,
    some of the schema's tables (committed one by one), and no clicloop_meta row."""
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
        if revision:
            conn.execute(text("INSERT INTO alembic_version VALUES (:r)"), {"r": revision})
        s.metadata.create_all(conn, tables=tables)
    engine.dispose()
    return url


@pytest.mark.parametrize("revision,tables", [
    (None, [s.assignments, s.meta, s.corrections]),  # killed inside migration 0001
    ("0004", s.TABLES),  # killed after the last migration, before the clicloop_meta row
], ids=["inside-0001", "before-meta-row"])
def test_a_half_made_sqlite_ledger_from_an_older_clicloop_is_completed(tmp_path, revision, tables):
    url = _half_made(tmp_path / "half.db", revision, tables)
    assert_complete(url)


def test_a_database_with_data_but_no_clicloop_marker_is_still_refused(tmp_path):
    url = _half_made(tmp_path / "other.db", "0004", s.TABLES)
    with sqlite3.connect(tmp_path / "other.db") as conn:
        conn.execute("INSERT INTO loops VALUES ('someone', 'h', '{}', 0, 0)")
    with pytest.raises(LedgerError, match="did not write"):
        Ledger(url).open()
    with sqlite3.connect(tmp_path / "other.db") as conn:  # left untouched
        assert conn.execute("SELECT name FROM loops").fetchall() == [("someone",)]
