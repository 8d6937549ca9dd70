"""continuous mode: model versions with the answers they were fitted on, and the order answers
arrived in (orchestrator/continuous.py), so staleness is measurable

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cont_versions",
        sa.Column("loop", sa.String(length=200), nullable=False),
        sa.Column("round_no", sa.Integer(), nullable=False),
        sa.Column("answers_seen", sa.Integer(), nullable=False),
        sa.Column("compute_s", sa.Float(), nullable=False),
        sa.Column("clock_s", sa.Float(), nullable=True),
        sa.Column("recorded_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("loop", "round_no"),
    )
    op.create_table(
        "cont_answers",
        sa.Column("task_key", sa.String(length=400), nullable=False),
        sa.Column("loop", sa.String(length=200), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("chosen_round", sa.Integer(), nullable=False),
        sa.Column("answered_round", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("task_key"),
    )
    op.create_index("ix_cont_answers_loop", "cont_answers", ["loop", "seq"])


def downgrade() -> None:
    op.drop_index("ix_cont_answers_loop", table_name="cont_answers")
    op.drop_table("cont_answers")
    op.drop_table("cont_versions")
