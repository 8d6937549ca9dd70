"""cont_versions.price_micros: the reward per answer a continuous version offered when the loop
prices tasks (wage_floor.price_rewards), so a resumed version offers what it offered before the
crash instead of a price from the ledger as it stands at the resume

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cont_versions") as batch:
        batch.add_column(sa.Column("price_micros", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cont_versions") as batch:
        batch.drop_column("price_micros")
