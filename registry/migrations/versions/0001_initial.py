"""The registry as doge 0.1 made it: names (version counters), versions and aliases.

Revision ID: 0001_initial
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gap_names",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("next_version", sa.Integer(), nullable=False),
    )
    op.create_table(
        "gap_versions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), sa.ForeignKey("gap_names.name"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("provenance", sa.Text(), nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_gap_versions_name_version"),
    )
    op.create_index("ix_gap_versions_name", "gap_versions", ["name"])
    op.create_index("ix_gap_versions_sha256", "gap_versions", ["sha256"])
    op.create_table(
        "gap_aliases",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("alias", sa.String(100), primary_key=True),
        sa.Column(
            "version_id", sa.Integer(), sa.ForeignKey("gap_versions.id", ondelete="CASCADE"), nullable=False
        ),
    )
    op.create_index("ix_gap_aliases_version_id", "gap_aliases", ["version_id"])


def downgrade() -> None:
    op.drop_table("gap_aliases")
    op.drop_table("gap_versions")
    op.drop_table("gap_names")
