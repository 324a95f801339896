"""Attachments: preview images (``doge gap preview``) and evaluation plots stored on a gap version.

Revision ID: 0004_attachments
Revises: 0003_evaluations
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_attachments"
down_revision = "0003_evaluations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gap_attachments",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "version_id", sa.Integer(), sa.ForeignKey("gap_versions.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("evaluation_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
    )
    op.create_index("ix_gap_attachments_version_id", "gap_attachments", ["version_id"])
    op.create_index("ix_gap_attachments_sha256", "gap_attachments", ["sha256"])


def downgrade() -> None:
    op.drop_table("gap_attachments")
