"""ix_assignments_external: answers by (loop, external_id), so the Label Studio ML backend finds
the answer an annotation id was recorded as with an index (a full read of a project asked about
every annotation, each a scan of the loop's answers)

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_assignments_external", "assignments", ["loop", "external_id"])


def downgrade() -> None:
    op.drop_index("ix_assignments_external", table_name="assignments")
