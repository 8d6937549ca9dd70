"""post-deployment review: production predictions, triage decisions, reviews, model versions

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_id = sa.String(length=200)


def upgrade() -> None:
    op.create_table(
        "pd_models",
        sa.Column("deployment", _id, nullable=False),
        sa.Column("version", _id, nullable=False),
        sa.Column("labels_json", sa.Text(), nullable=False),
        sa.Column("parent", _id, nullable=True),
        sa.Column("n_train", sa.Integer(), nullable=False),
        sa.Column("n_corrections", sa.Integer(), nullable=False),
        sa.Column("artifact", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("deployment", "version"),
    )
    op.create_table(
        "pd_promotions",
        sa.Column("deployment", _id, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("version", _id, nullable=False),
        sa.Column("previous", _id, nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("error_current", sa.Float(), nullable=True),
        sa.Column("error_candidate", sa.Float(), nullable=True),
        sa.Column("n_slice", sa.Integer(), nullable=True),
        sa.Column("recorded_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("deployment", "seq"),
    )
    op.create_table(
        "pd_predictions",
        sa.Column("deployment", _id, nullable=False),
        sa.Column("prediction_id", _id, nullable=False),
        sa.Column("model_version", _id, nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("features_json", sa.Text(), nullable=True),
        sa.Column("predicted_label", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("proba_json", sa.Text(), nullable=True),
        sa.Column("predicted_at", sa.Float(), nullable=False),
        sa.Column("feedback", sa.String(length=32), nullable=True),
        sa.Column("rephrasing", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("deployment", "prediction_id"),
    )
    with op.batch_alter_table("pd_predictions", schema=None) as batch_op:
        batch_op.create_index("ix_pd_predictions_time", ["deployment", "predicted_at"], unique=False)
        batch_op.create_index("ix_pd_predictions_version", ["deployment", "model_version"], unique=False)
    op.create_table(
        "pd_rejects",
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("deployment", _id, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "pd_offsets",
        sa.Column("deployment", _id, nullable=False),
        sa.Column("path", sa.String(length=1000), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("deployment", "path"),
    )
    op.create_table(
        "pd_triage",
        sa.Column("deployment", _id, nullable=False),
        sa.Column("prediction_id", _id, nullable=False),
        sa.Column("policy", sa.String(length=100), nullable=False),
        sa.Column("review", sa.Boolean(), nullable=False),
        sa.Column("audit", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.Float(), nullable=False),
        sa.Column("fired_json", sa.Text(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("model_version", _id, nullable=False),
        sa.Column("recorded_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("deployment", "prediction_id", "policy"),
    )
    with op.batch_alter_table("pd_triage", schema=None) as batch_op:
        batch_op.create_index("ix_pd_triage_review", ["deployment", "policy", "review"], unique=False)
    op.create_table(
        "pd_reviews",
        sa.Column("task_key", sa.String(length=400), nullable=False),
        sa.Column("deployment", _id, nullable=False),
        sa.Column("prediction_id", _id, nullable=False),
        sa.Column("model_version", _id, nullable=False),
        sa.Column("model_label", sa.Text(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("worker", sa.String(length=64), nullable=False),
        sa.Column("reviewed_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("task_key"),
    )
    with op.batch_alter_table("pd_reviews", schema=None) as batch_op:
        batch_op.create_index("ix_pd_reviews_prediction", ["deployment", "prediction_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("pd_reviews", schema=None) as batch_op:
        batch_op.drop_index("ix_pd_reviews_prediction")
    op.drop_table("pd_reviews")
    with op.batch_alter_table("pd_triage", schema=None) as batch_op:
        batch_op.drop_index("ix_pd_triage_review")
    op.drop_table("pd_triage")
    op.drop_table("pd_offsets")
    op.drop_table("pd_rejects")
    with op.batch_alter_table("pd_predictions", schema=None) as batch_op:
        batch_op.drop_index("ix_pd_predictions_version")
        batch_op.drop_index("ix_pd_predictions_time")
    op.drop_table("pd_predictions")
    op.drop_table("pd_promotions")
    op.drop_table("pd_models")
