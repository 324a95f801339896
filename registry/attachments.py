"""Images attached to a gap version: previews (what the gap does to a few images) and evaluation
plots. Each is a PNG stored content-addressed in the blob store beside the vectors
(``<sha[:2]>/<sha>.png``), written before its row and checked against its sha256 on every read.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select

from doge.clock import iso_utc, who
from doge.errors import DogeError, NotFound

from . import gapfile, records
from .blobs import sha256_hex
from .models import AttachmentRow

PNG_SUFFIX = ".png"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PREVIEW = "preview"
PLOT = "plot"
DATASET = "dataset"  # an overview sheet of a dataset doge augment made with the version (settings: its folder, counts)
KINDS = (PREVIEW, PLOT, DATASET)
MAX_BYTES = 32 * 1024 * 1024


def attachment_record(row: AttachmentRow, ref: str) -> dict:
    """An attachment as JSON (the keys of ``gap show --json``'s ``previews`` and ``plots``).

    One that breaks its schema (another tool wrote the database) comes back with empty
    ``settings`` and a ``damaged`` line saying what is wrong: readers show it as damaged."""
    problem = records.damage_of_text("settings", row.settings)
    record = {
        "id": row.id,
        "ref": ref,
        "kind": row.kind,
        "sha256": row.sha256,
        "size": row.size,
        "evaluation_id": row.evaluation_id,
        "created_at": iso_utc(row.created_at),
        "created_by": row.created_by,
        "settings": {} if problem else gapfile.provenance_from_text(row.settings),
    }
    problem = problem or records.damage(records.attachment_kind(record), record)
    if problem:
        return {**record, "settings": {}, "damaged": f"{row.kind} {row.id} of {ref} is damaged: {problem}"}
    return record


def check_png(data: bytes, what: str) -> bytes:
    if not isinstance(data, bytes | bytearray) or not bytes(data).startswith(PNG_MAGIC):
        raise DogeError(f"{what}: not a PNG image; attach PNG bytes")
    if len(data) > MAX_BYTES:
        raise DogeError(f"{what}: {len(data) >> 20} MiB is too large for an attachment (at most {MAX_BYTES >> 20} MiB)")
    return bytes(data)


class Attachments:
    """The registry's attachment methods (mixed into :class:`doge.registry.Registry`)."""

    if TYPE_CHECKING:  # what the Registry provides
        blobs: Any
        _tx: Any
        _resolve_row: Any
        _ref: Any
        _lock_blob: Any

    def add_attachment(
        self, ref, data: bytes, kind: str = PREVIEW, settings: dict | None = None, evaluation_id: int | None = None
    ) -> dict:
        """Attach PNG ``data`` to ``ref``'s version; returns its record (with its ``id``)."""
        if kind not in KINDS:
            raise DogeError(f"unknown attachment kind {kind!r}; known: {', '.join(KINDS)}")
        shown = getattr(ref, "ref", ref)  # a GapVersion is named by its ref, not its whole repr
        data = check_png(data, f"{kind} for {shown}")
        records.check_settings(kind, settings or {}, f"{kind} for {shown}")
        settings_text = gapfile.provenance_json(settings or {})
        with self._tx(write=True) as s:
            row = self._resolve_row(s, self._ref(ref))
            sha = sha256_hex(data)
            self._lock_blob(s, sha)
            self.blobs.put(data, PNG_SUFFIX)  # the blob before its row
            att = AttachmentRow(
                version_id=row.id,
                kind=kind,
                sha256=sha,
                size=len(data),
                evaluation_id=evaluation_id,
                created_at=datetime.now(timezone.utc),
                created_by=who(),
                settings=settings_text,
            )
            s.add(att)
            s.flush()
            return attachment_record(att, f"{row.name}@v{row.version}")

    def attachments(self, ref, kind: str | None = None) -> list[dict]:
        """The attachments of ``ref``'s version (all, or those of ``kind``), oldest first."""
        with self._tx() as s:
            row = self._resolve_row(s, self._ref(ref))
            q = select(AttachmentRow).where(AttachmentRow.version_id == row.id)
            if kind is not None:
                q = q.where(AttachmentRow.kind == kind)
            return [attachment_record(a, f"{row.name}@v{row.version}") for a in s.scalars(q.order_by(AttachmentRow.id))]

    def previews(self, ref) -> list[dict]:
        return self.attachments(ref, PREVIEW)

    def read_attachment(self, ref, attachment_id: int) -> tuple[dict, bytes]:
        """(record, PNG bytes) of attachment ``attachment_id`` of ``ref``'s version, sha-checked."""
        record = self._attachment(ref, attachment_id)
        what = f"{record['kind']} {attachment_id} of gap {record['ref']}"
        return record, self.blobs.get(record["sha256"], what, PNG_SUFFIX)

    def remove_attachment(self, ref, attachment_id: int, kind: str | None = None) -> dict:
        """Remove one attachment of ``ref``'s version (only if it is of ``kind``, when given); its
        blob goes when nothing else uses it."""
        with self._tx(write=True) as s:
            row = self._resolve_row(s, self._ref(ref))
            # an id beyond SQL's 64-bit integers names no row (the driver would raise OverflowError)
            att = s.get(AttachmentRow, attachment_id) if 0 < attachment_id < 2**63 else None
            if att is None or att.version_id != row.id:
                raise NotFound(self._no_attachment(s, row, attachment_id))
            if kind is not None and att.kind != kind:
                raise DogeError(
                    f"{att.kind} {attachment_id} of gap {row.name}@v{row.version} is not a {kind}; "
                    "it goes with its evaluation or its version"
                )
            record = attachment_record(att, f"{row.name}@v{row.version}")
            s.delete(att)
        self._collect_attachment_blobs([record["sha256"]])
        return record

    # -- internals -----------------------------------------------------------------------

    def _attachment(self, ref, attachment_id: int) -> dict:
        with self._tx() as s:
            row = self._resolve_row(s, self._ref(ref))
            # an id beyond SQL's 64-bit integers names no row (the driver would raise OverflowError)
            att = s.get(AttachmentRow, attachment_id) if 0 < attachment_id < 2**63 else None
            if att is None or att.version_id != row.id:
                raise NotFound(self._no_attachment(s, row, attachment_id))
            return attachment_record(att, f"{row.name}@v{row.version}")

    def _no_attachment(self, s, row, attachment_id: int) -> str:
        ids = s.scalars(select(AttachmentRow.id).where(AttachmentRow.version_id == row.id).order_by(AttachmentRow.id))
        have = ", ".join(map(str, ids)) or "none"
        return f"gap {row.name}@v{row.version} has no preview or plot {attachment_id} (its attachments: {have}); see 'doge gap show'"

    def _drop_attachments(self, s, version_id: int) -> list[str]:
        """Delete a version's attachment rows in the caller's transaction; their blobs' sha256s."""
        shas = list(s.scalars(select(AttachmentRow.sha256).where(AttachmentRow.version_id == version_id)))
        s.execute(delete(AttachmentRow).where(AttachmentRow.version_id == version_id))
        return shas

    def _collect_attachment_blobs(self, shas) -> None:
        """After a commit: delete the PNG blobs that no attachment uses any more."""
        for sha in sorted(set(shas)):
            self._collect_png(sha)

    def _collect_png(self, sha: str) -> bool:
        """Delete PNG blob ``sha`` if no attachment uses it (checked under the blob's lock); True if deleted."""
        with self._tx(write=True) as s:
            self._lock_blob(s, sha)
            users = s.scalar(select(func.count()).select_from(AttachmentRow).where(AttachmentRow.sha256 == sha))
            if not users:
                self.blobs.delete(sha, PNG_SUFFIX)
            return not users
