"""Ledger tables (SQLAlchemy Core), migrated with Alembic (``orchestrator/ledger/migrations``).

Facts are appended with idempotency keys and never updated in place, except a round's and a
task's status. Money is stored as integer micro-units (1e-6 of ``currency``) so sums are exact
in SQL on every database; seconds as floats; times as epoch seconds.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, MetaData, String, Table, Text

APP = "clicloop"
MICROS = 1_000_000
PAYMENT_KINDS = ("reward", "bonus", "adjustment", "fee", "tax", "reversal")
OVERHEAD_KINDS = ("search", "wait", "returned", "qualification")

metadata = MetaData()
_id = String(200)
_key = String(400)

meta = Table("clicloop_meta", metadata, Column("key", String(64), primary_key=True), Column("value", Text, nullable=False))

loops = Table(
    "loops", metadata,
    Column("name", _id, primary_key=True),
    Column("config_hash", String(64), nullable=False),
    Column("config_json", Text, nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
)

rounds = Table(
    "rounds", metadata,
    Column("loop", _id, primary_key=True),
    Column("round_no", Integer, primary_key=True),
    Column("model_version", _id, nullable=False),
    Column("n_labeled", Integer, nullable=False),
    Column("metric_name", String(32), nullable=False),
    Column("metric", Float),
    Column("status", String(16), nullable=False),  # started | finished
    Column("stop_reason", Text),
    Column("recorded_at", Float, nullable=False),
)

tasks = Table(
    "tasks", metadata,
    Column("key", _key, primary_key=True),
    Column("loop", _id, nullable=False),
    Column("round_no", Integer, nullable=False),
    Column("item_id", _id, nullable=False),
    Column("replica", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("purpose", Text, nullable=False),
    Column("backend", String(100), nullable=False),
    Column("rank", Integer, nullable=False),  # position in the strategy's ranking
    Column("reward_micros", BigInteger),  # the reward offered, when the loop priced the task
    Column("status", String(16), nullable=False),  # created | dispatched | expired
    Column("recorded_at", Float, nullable=False),
    Index("ix_tasks_loop_round", "loop", "round_no"),
)

assignments = Table(
    "assignments", metadata,
    Column("task_key", _key, primary_key=True),
    Column("loop", _id, nullable=False),
    Column("round_no", Integer, nullable=False),
    Column("item_id", _id, nullable=False),
    Column("backend", String(100), nullable=False),
    Column("worker", String(64), nullable=False),  # salted pseudonym, never the raw id
    Column("label", Text),  # None when skipped
    Column("status", String(16), nullable=False),  # submitted | skipped | quarantined
    Column("reason", Text),
    Column("external_id", String(200)),
    Column("accepted_at", Float),
    Column("submitted_at", Float),
    Column("active_s", Float, nullable=False),
    Column("search_s", Float, nullable=False),
    Column("wait_s", Float, nullable=False),
    Column("returned_s", Float, nullable=False),
    Column("recorded_at", Float, nullable=False),
    Index("ix_assignments_loop_round", "loop", "round_no"),
    Index("ix_assignments_worker", "loop", "backend", "worker"),
)

workers = Table(
    "workers", metadata,
    Column("loop", _id, primary_key=True),
    Column("backend", String(100), primary_key=True),
    Column("worker", String(64), primary_key=True),
    Column("qualification_s", Float, nullable=False),
    Column("first_round", Integer, nullable=False),
    Column("recorded_at", Float, nullable=False),
)

payments = Table(
    "payments", metadata,
    Column("key", _key, primary_key=True),  # e.g. <task key>/reward: a payment is made once
    Column("loop", _id, nullable=False),
    Column("round_no", Integer, nullable=False),
    Column("backend", String(100), nullable=False),
    Column("worker", String(64), nullable=False),
    Column("task_key", _key),  # None for payments not tied to one task (adjustments)
    Column("kind", String(16), nullable=False),  # see PAYMENT_KINDS
    Column("amount_micros", BigInteger, nullable=False),  # to the worker, or to the platform (fee, tax)
    Column("currency", String(8), nullable=False),
    Column("reason", Text),
    Column("recorded_at", Float, nullable=False),
    Index("ix_payments_loop_round", "loop", "round_no"),
    Index("ix_payments_worker", "loop", "backend", "worker"),
)

reviews = Table(
    "reviews", metadata,
    Column("task_key", _key, primary_key=True),  # one decision per assignment
    Column("loop", _id, nullable=False),
    Column("decision", String(8), nullable=False),  # accept | reject
    Column("reason", Text),  # required for a rejection
    Column("reviewer", String(100), nullable=False),
    Column("recorded_at", Float, nullable=False),
)

corrections = Table(
    "corrections", metadata,
    Column("key", _key, primary_key=True),  # <task key>@<version>
    Column("loop", _id, nullable=False),
    Column("task_key", _key, nullable=False),
    Column("item_id", _id, nullable=False),
    Column("event", String(8), nullable=False),  # updated | deleted
    Column("label", Text),
    Column("recorded_at", Float, nullable=False),
    Index("ix_corrections_loop", "loop", "task_key"),
)

labels = Table(
    "labels", metadata,
    Column("loop", _id, primary_key=True),
    Column("item_id", _id, primary_key=True),
    Column("revision", Integer, primary_key=True),  # 0 = first aggregation; corrections add revisions
    Column("label", Text),  # None: every answer was withdrawn, the item is unlabeled again
    Column("confidence", Float, nullable=False),
    Column("n_answers", Integer, nullable=False),
    Column("round_no", Integer, nullable=False),
    Column("recorded_at", Float, nullable=False),
)

TABLES = [meta, loops, rounds, tasks, assignments, workers, payments, reviews, corrections, labels]
