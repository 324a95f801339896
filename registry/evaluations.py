"""Evaluation records (``doge gap eval``): stored on a version, read back oldest first.

The record itself is the evaluator's (``doge.quality.evaluate``); what the registry indexes
(who, when, which images of which folders, the gap's sha256) goes into columns beside it.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from doge.clock import iso_utc, who
from doge.errors import DogeError

from . import gapfile, records
from .models import EvaluationRow, GapRow


def add(s: Session, version: GapRow, record: dict, stored_at: datetime | None = None) -> dict:
    """Store ``record`` on ``version`` in the caller's transaction (``stored_at``: when it was first
    stored, for a copy; default now); returns it with its ``evaluation_id``."""
    if not isinstance(record, dict):
        raise DogeError(f"an evaluation record must be a dict, got {type(record).__name__}")
    records.check("evaluation", record, f"an evaluation of {version.name}@v{version.version}")
    metrics = gapfile.provenance_json(record)  # canonical JSON; refuses what JSON cannot hold
    source, target = record.get("source") or {}, record.get("target") or {}
    row = EvaluationRow(
        version_id=version.id,
        name=version.name,
        version=version.version,
        gap_sha256=version.sha256,
        created_at=stored_at or datetime.now(timezone.utc),
        created_by=str(record.get("created_by") or who()),
        source_folder=str(source.get("folder", "")),
        source_digest=str(source.get("digest", "")),
        source_images=int(source.get("images", 0)),
        target_folder=str(target.get("folder", "")),
        target_digest=str(target.get("digest", "")),
        target_images=int(target.get("images", 0)),
        encoder=gapfile.provenance_json(record.get("encoder") or {}),
        metrics=metrics,
    )
    s.add(row)
    s.flush()
    return as_record(row)


def of_version(s: Session, version_id: int) -> list[dict]:
    """The records stored on a version, oldest first."""
    q = select(EvaluationRow).where(EvaluationRow.version_id == version_id).order_by(EvaluationRow.id)
    return [as_record(e) for e in s.scalars(q)]


def remove_all(s: Session, version_id: int) -> None:
    """Drop a version's records (the version is being removed)."""
    s.execute(delete(EvaluationRow).where(EvaluationRow.version_id == version_id))


def as_record(row: EvaluationRow) -> dict:
    """A stored evaluation as its record, with the row's id and the time it was stored.

    A record that breaks its schema (another tool wrote the database) comes back as
    ``{"evaluation_id", "stored_at", "damaged": "what is wrong"}``: readers show it as damaged."""
    ids = {"evaluation_id": row.id, "stored_at": iso_utc(row.created_at)}
    problem = records.damage_of_text("evaluation", row.metrics)
    if problem is None:
        record = {**gapfile.provenance_from_text(row.metrics), **ids}
        problem = records.damage("evaluation", record)
        if problem is None:
            return record
    return {**ids, "damaged": f"evaluation {row.id} of {row.name}@v{row.version} is damaged: {problem}"}
