"""Labels (key=value on a version) and the audit log of alias, label and version changes.

Revision ID: 0002_labels_audit
Revises: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_labels_audit"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gap_labels",
        sa.Column(
            "version_id", sa.Integer(), sa.ForeignKey("gap_versions.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.create_index("ix_gap_labels_key", "gap_labels", ["key"])
    op.create_table(
        "gap_audit",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
        sa.Column("who", sa.String(200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_gap_audit_name", "gap_audit", ["name"])


def downgrade() -> None:
    op.drop_table("gap_audit")
    op.drop_table("gap_labels")
