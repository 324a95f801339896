"""Evaluations: the figures of ``doge gap eval`` stored on a gap version.

Revision ID: 0003_evaluations
Revises: 0002_labels_audit
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_evaluations"
down_revision = "0002_labels_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gap_evaluations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "version_id", sa.Integer(), sa.ForeignKey("gap_versions.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("gap_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("source_folder", sa.Text(), nullable=False),
        sa.Column("source_digest", sa.String(64), nullable=False),
        sa.Column("source_images", sa.Integer(), nullable=False),
        sa.Column("target_folder", sa.Text(), nullable=False),
        sa.Column("target_digest", sa.String(64), nullable=False),
        sa.Column("target_images", sa.Integer(), nullable=False),
        sa.Column("encoder", sa.Text(), nullable=False),
        sa.Column("metrics", sa.Text(), nullable=False),
    )
    op.create_index("ix_gap_evaluations_version_id", "gap_evaluations", ["version_id"])


def downgrade() -> None:
    op.drop_table("gap_evaluations")
