"""eval_sizes: how many evaluation items each round's metric was measured on, so the "cost to
reach" table can give the interval the evaluation set's sampling error allows

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eval_sizes",
        sa.Column("loop", sa.String(length=200), nullable=False),
        sa.Column("round_no", sa.Integer(), nullable=False),
        sa.Column("n_items", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("loop", "round_no"),
    )


def downgrade() -> None:
    op.drop_table("eval_sizes")
