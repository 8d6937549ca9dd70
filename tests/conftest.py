"""Shared fixtures. PostgreSQL is real (127.0.0.1:5432, database `test`): each test session
works in its own schema and drops it afterwards. A missing server fails the tests, never skips."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

PG_BASE = os.environ.get("CLICLOOP_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# Worker-pseudonym key files (orchestrator/ledger/secrecy.py) go to a folder of this run, never
# the user's ~/.config; CLI subprocesses inherit it.
os.environ["CLICLOOP_KEY_DIR"] = tempfile.mkdtemp(prefix="clicloop-test-keys-")
# Cached embeddings and neighbour graphs (orchestrator/cachedir.py) likewise: never the user's ~/.cache.
os.environ["CLICLOOP_CACHE_DIR"] = tempfile.mkdtemp(prefix="clicloop-test-cache-")
PURPOSE = "Teach a model to read handwritten digits on scanned forms."


@contextmanager
def postgresql_url(prefix: str) -> Iterator[str]:
    """A ledger URL on a new schema ``<prefix>_<random>`` of the real PostgreSQL, dropped
    afterwards; a server that does not answer fails the test with what to start."""
    from sqlalchemy import create_engine, text

    schema = f"{prefix}_{secrets.token_hex(4)}"
    engine = create_engine(PG_BASE)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as e:  # noqa: BLE001 - any connection failure becomes a clear failure
        pytest.fail(f"PostgreSQL is required at {PG_BASE} (start it: see .ci/run): {e}")
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_BASE)
    name = f"clicloop_test_{secrets.token_hex(4)}"
    try:
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {name}"))
    except Exception as e:  # noqa: BLE001 - turn any connection failure into a clear failure
        pytest.fail(f"PostgreSQL is required at {PG_BASE} (start it: see .ci/run): {e}")
    yield name
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {name} CASCADE"))
    engine.dispose()


@pytest.fixture
def pg_url(pg_schema: str) -> Iterator[str]:
    """A fresh PostgreSQL schema per test, as a ledger URL."""
    from sqlalchemy import create_engine, text

    schema = f"{pg_schema}_{secrets.token_hex(3)}"
    engine = create_engine(PG_BASE)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every ledger test runs on SQLite and on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return request.getfixturevalue("pg_url")


def digits_config(ledger: str, **overrides: Any) -> dict[str, Any]:
    """A small, fast loop on the bundled digits with a simulated crowd."""
    cfg: dict[str, Any] = {
        "loop": {"name": "t", "seed": 0, "purpose": PURPOSE, "batch_size": 10},
        "data": {"builtin": "digits", "seed_size": 20},
        "stop": {"max_labels": 50},
        "ledger": ledger,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray cluster of two CPUs, all on 127.0.0.1, for one test module."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # every Ray listener on 127.0.0.1
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    yield ray
    ray.shutdown()
