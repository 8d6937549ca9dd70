"""covering indexes for the accounting queries and ledger verify

The accounting queries filter on the loop and sum seconds and money per round, worker or backend.
On SQLite (no statistics) an index on (loop, ...) alone was used for ``loop = ?`` and every row
was then fetched from the table in index order (seconds per query over 1,000,000 answers). These
indexes carry the summed columns, so each query reads one index in group order. Also: the items
of a loop (votes of given items; verify's "labels come from answers" check was quadratic without
it) and the payments of a task (review with withheld pay; verify's payment checks).
See benchmarks/ledger_bench.py and docs/benchmarks.md ("Ledger").

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_SECONDS = ["active_s", "search_s", "wait_s", "returned_s"]
NEW = {
    "assignments": [
        ("ix_assignments_loop_round", ["loop", "round_no", "status", *_SECONDS]),
        ("ix_assignments_worker", ["loop", "backend", "worker", "round_no", *_SECONDS]),
        ("ix_assignments_item", ["loop", "item_id"]),
    ],
    "payments": [
        ("ix_payments_loop_round", ["loop", "round_no", "kind", "amount_micros"]),
        ("ix_payments_worker", ["loop", "backend", "worker", "round_no", "kind", "amount_micros"]),
        ("ix_payments_task", ["task_key", "kind", "amount_micros", "worker"]),
    ],
}
OLD = {
    "assignments": [("ix_assignments_loop_round", ["loop", "round_no"]), ("ix_assignments_worker", ["loop", "backend", "worker"])],
    "payments": [("ix_payments_loop_round", ["loop", "round_no"]), ("ix_payments_worker", ["loop", "backend", "worker"])],
}


def _swap(drop: dict, create: dict) -> None:
    for table, indexes in drop.items():
        for name, _ in indexes:
            op.drop_index(name, table_name=table)
    for table, indexes in create.items():
        for name, columns in indexes:
            op.create_index(name, table, columns, unique=False)


def upgrade() -> None:
    _swap(OLD, NEW)


def downgrade() -> None:
    _swap(NEW, OLD)
