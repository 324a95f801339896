"""SQLAlchemy 2 models of the gap registry (portable: SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class GapName(Base):
    """One row a name: the counter that hands out versions, so a number is never reused."""

    __tablename__ = "gap_names"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    next_version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)


class GapRow(Base):
    """One live version of a gap; the vector itself is the blob named by ``sha256``."""

    __tablename__ = "gap_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_gap_versions_name_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), ForeignKey("gap_names.name"), nullable=False, index=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    dim: Mapped[int] = mapped_column(Integer, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_by: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    source: Mapped[str] = mapped_column(Text, nullable=False, default="created")
    provenance: Mapped[str] = mapped_column(Text, nullable=False, default="{}")  # JSON object


class AliasRow(Base):
    """An alias (``prod``) of a name, pointing at one version; at most one per (name, alias)."""

    __tablename__ = "gap_aliases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    alias: Mapped[str] = mapped_column(String(100), primary_key=True)
    version_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("gap_versions.id", ondelete="CASCADE"), nullable=False, index=True
    )


class LabelRow(Base):
    """A ``key=value`` label on one version; at most one value per (version, key)."""

    __tablename__ = "gap_labels"

    version_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("gap_versions.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class AuditRow(Base):
    """One change to a name: alias moves, label changes, versions created and removed.

    Keyed by name, not by a foreign key, so that it outlives the versions it tells about.
    """

    __tablename__ = "gap_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    action: Mapped[str] = mapped_column(String(40), nullable=False)
    before: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON
    after: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON
    who: Mapped[str] = mapped_column(String(200), nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class EvaluationRow(Base):
    """One ``doge gap eval`` of a version: on which held-out images, with which encoder, and its
    figures (``metrics``: the whole evaluation record as JSON). Removed with its version."""

    __tablename__ = "gap_evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("gap_versions.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    gap_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_by: Mapped[str] = mapped_column(String(200), nullable=False)
    source_folder: Mapped[str] = mapped_column(Text, nullable=False, default="")
    source_digest: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    source_images: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    target_folder: Mapped[str] = mapped_column(Text, nullable=False, default="")
    target_digest: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    target_images: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    encoder: Mapped[str] = mapped_column(Text, nullable=False, default="{}")  # JSON
    metrics: Mapped[str] = mapped_column(Text, nullable=False, default="{}")  # JSON


class AttachmentRow(Base):
    """An image attached to a version: a ``preview`` (``doge gap preview``: what the gap does to a
    few images) or an evaluation's ``plot``. The PNG is a content-addressed blob (``sha256``) in
    the blob store beside the vectors; ``settings`` (JSON) says what made it. Removed with its version."""

    __tablename__ = "gap_attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("gap_versions.id", ondelete="CASCADE"), nullable=False, index=True
    )
    kind: Mapped[str] = mapped_column(String(20), nullable=False)  # preview | plot
    sha256: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    size: Mapped[int] = mapped_column(Integer, nullable=False)  # bytes
    evaluation_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # a plot's evaluation
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_by: Mapped[str] = mapped_column(String(200), nullable=False)
    settings: Mapped[str] = mapped_column(Text, nullable=False, default="{}")  # JSON
