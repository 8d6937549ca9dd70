"""Ledger tables (SQLAlchemy Core). Money is stored as integer micro-units (1e-6 of the
currency) so sums are exact in SQL on every database; seconds as floats."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

SCHEMA_VERSION = "1"
APP = "clicloop"
MICROS = 1_000_000

metadata = MetaData()

meta = Table(
    "clicloop_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

loops = Table(
    "loops",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("config_hash", String(64), nullable=False),
    Column("config_json", Text, nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
)

rounds = Table(
    "rounds",
    metadata,
    Column("loop", String(200), primary_key=True),
    Column("round_no", Integer, primary_key=True),
    Column("model_version", String(200), nullable=False),
    Column("n_labeled", Integer, nullable=False),
    Column("metric_name", String(32), nullable=False),
    Column("metric", Float),
    Column("status", String(16), nullable=False),  # started | finished
    Column("stop_reason", Text),
    Column("recorded_at", Float, nullable=False),
)

tasks = Table(
    "tasks",
    metadata,
    Column("key", String(400), primary_key=True),
    Column("loop", String(200), nullable=False),
    Column("round_no", Integer, nullable=False),
    Column("item_id", String(200), nullable=False),
    Column("replica", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("purpose", Text, nullable=False),
    Column("backend", String(100), nullable=False),
    Column("rank", Integer, nullable=False),  # position in the strategy's ranking
    Column("status", String(16), nullable=False),  # created | dispatched
    Column("recorded_at", Float, nullable=False),
    Index("ix_tasks_loop_round", "loop", "round_no"),
)

assignments = Table(
    "assignments",
    metadata,
    Column("task_key", String(400), primary_key=True),
    Column("loop", String(200), nullable=False),
    Column("round_no", Integer, nullable=False),
    Column("item_id", String(200), nullable=False),
    Column("backend", String(100), nullable=False),
    Column("worker", String(64), nullable=False),  # salted pseudonym, never the raw id
    Column("label", Text),  # None when skipped
    Column("status", String(16), nullable=False),  # submitted | skipped | quarantined
    Column("reason", Text),
    Column("active_s", Float, nullable=False),
    Column("search_s", Float, nullable=False),
    Column("wait_s", Float, nullable=False),
    Column("reward_micros", BigInteger, nullable=False),
    Column("fee_micros", BigInteger, nullable=False),
    Column("currency", String(8), nullable=False),
    Column("recorded_at", Float, nullable=False),
    Index("ix_assignments_loop_round", "loop", "round_no"),
)

workers = Table(
    "workers",
    metadata,
    Column("loop", String(200), primary_key=True),
    Column("backend", String(100), primary_key=True),
    Column("worker", String(64), primary_key=True),
    Column("qualification_s", Float, nullable=False),
    Column("first_round", Integer, nullable=False),
    Column("recorded_at", Float, nullable=False),
)

labels = Table(
    "labels",
    metadata,
    Column("loop", String(200), primary_key=True),
    Column("item_id", String(200), primary_key=True),
    Column("label", Text, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("n_answers", Integer, nullable=False),
    Column("round_no", Integer, nullable=False),
    Column("recorded_at", Float, nullable=False),
)

TABLES = [meta, loops, rounds, tasks, assignments, workers, labels]
