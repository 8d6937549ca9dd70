"""eval_sizes.digest: a fingerprint of the evaluation set each round's metric was measured on, so
a resumed loop whose evaluation file changed is refused instead of measuring on another set

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("eval_sizes") as batch:
        batch.add_column(sa.Column("digest", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("eval_sizes") as batch:
        batch.drop_column("digest")
