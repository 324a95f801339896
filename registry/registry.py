"""The gap registry: named, versioned gaps; rows in SQL, vectors in a content-addressed blob store."""

from __future__ import annotations

import builtins
import difflib
import json
import logging
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, overload

from sqlalchemy import delete, distinct, func, insert, inspect, or_, select
from sqlalchemy.orm import Session

from doge.atomic import make_dirs, write_atomic
from doge.clock import iso_utc, who
from doge.errors import DogeError, IntegrityError, NotFound, first_line
from doge.home import doge_home
from doge.names import MAX_VERSION, Ref, parse_ref, validate_alias, validate_name
from doge.urls import hide_password

from . import audit, gapfile, labels, records, schema
from . import evaluations as evaluation_records
from .attachments import Attachments
from .blobs import sha256_hex
from .blobstores import open_blob_store
from .copying import ADDED, PRESENT, Placement, VersionConflict, place
from .database import SQLITE_BUSY_TIMEOUT_S, advisory_lock, db_errors, make_engine
from .database import WRITE as _WRITE
from .models import AliasRow, AuditRow, EvaluationRow, GapName, GapRow, LabelRow

if TYPE_CHECKING:
    import numpy as np
    from sqlalchemy import ColumnElement, ColumnExpressionArgument

MAX_IMPORT_BYTES = 64 * 1024 * 1024

log = logging.getLogger("doge")


@dataclass(frozen=True)
class GapVersion:
    name: str
    version: int
    sha256: str
    dim: int
    description: str
    created_at: datetime  # UTC
    created_by: str
    aliases: tuple[str, ...] = ()
    provenance: dict = field(default_factory=dict, hash=False)
    labels: dict = field(default_factory=dict, hash=False)  # key -> value

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"

    def file_name(self, suffix: str = gapfile.SUFFIX) -> str:
        """A file name for this version: ``real_to_painting_v2.safetensors`` (a name's '->' as '_to_')."""
        return f"{self.name.replace('->', '_to_')}_v{self.version}{suffix}"

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "aliases": list(self.aliases),
            "sha256": self.sha256,
            "dim": self.dim,
            "description": self.description,
            "created_at": iso_utc(self.created_at),
            "created_by": self.created_by,
            "provenance": self.provenance,
            "labels": dict(sorted(self.labels.items())),
        }


class VersionRow(NamedTuple):
    """One version as listed: plain values, provenance still its stored JSON text."""

    name: str
    version: int
    sha256: str
    dim: int
    description: str
    created_at: datetime
    created_by: str
    provenance_text: str
    aliases: tuple[str, ...]
    labels: dict

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"

    @property
    def provenance(self) -> dict:
        return records.stored_provenance(self.provenance_text)

    def version_object(self) -> GapVersion:
        return GapVersion(
            self.name,
            self.version,
            self.sha256,
            self.dim,
            self.description,
            _utc(self.created_at),
            self.created_by,
            self.aliases,
            self.provenance,
            self.labels,
        )

    def to_json_text(self) -> str:
        """``GapVersion.to_json()`` as one line of JSON, built by hand with the stored provenance
        text spliced in unparsed (it is canonical JSON, checked when stored): what makes listing
        10,000 versions fast. The keys come in sorted order, as ``json.dumps(sort_keys=True)``."""
        at = self.created_at
        when = at.isoformat(timespec="seconds") + "Z" if at.tzinfo is None else iso_utc(at)
        labels_ = _JSON_LINE.encode(self.labels) if self.labels else "{}"
        provenance = self.provenance_text if _is_json_object(self.provenance_text) else _DAMAGED_PROVENANCE
        return "".join(
            (
                '{"aliases": [',
                ", ".join(map(_quote, self.aliases)),
                '], "created_at": "',
                when,
                '", "created_by": ',
                _quote(self.created_by),
                ', "description": ',
                _quote(self.description),
                f', "dim": {int(self.dim)}, "labels": ',
                labels_,
                ', "name": ',
                _quote(self.name),
                ', "provenance": ',
                provenance,
                ', "ref": ',
                _quote(f"{self.name}@v{self.version}"),
                ', "sha256": ',
                _quote(self.sha256),
                f', "version": {int(self.version)}}}',
            )
        )


def _is_json_object(text) -> bool:
    """Whether a stored provenance column is a JSON object (json.loads in C: ~2 µs a row)."""
    if not isinstance(text, str) or not text.startswith("{"):
        return False
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


_DAMAGED_PROVENANCE = '{"damaged": "the stored provenance is damaged: not a JSON object"}'
_JSON_LINE = json.JSONEncoder(sort_keys=True)  # one encoder for every line: no set-up per call
_quote = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]  # a JSON string, in C


CommitListener = Callable[[list[dict], str], None]
"""``listener(events, registry)``: the history entries one commit recorded (``history()``'s form), and
the registry's URL with its password hidden."""


class Registry(Attachments):
    """Gaps by name and version. ``url`` is any SQLAlchemy URL; default: SQLite in the home.

    ``blob_store`` is where the vectors go: a folder or an fsspec URL (``s3://bucket/gaps``);
    default: $DOGE_BLOB_STORE, else ``<home>/blobs``.

    The registry is the bottom layer: it imports no plugin. What it committed leaves through the
    listeners given to :meth:`on_commit`; the layers above (the CLI, ``doge serve``, the ``doge``
    functions) connect them to the plugins' ``gap_event`` hook with
    :func:`doge.pluginmanager.forward_gap_events`.
    """

    def __init__(
        self,
        home=None,
        url: str | None = None,
        blob_store: str | os.PathLike | None = None,
        busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S,
    ):
        """``busy_timeout_s``: how long a SQLite registry waits for another writer's lock before
        :class:`doge.registry.database.RegistryBusy` (``doge serve`` waits only a few seconds)."""
        self.home = doge_home(home).resolve()
        self.url = _registry_url(self.home, url)
        self.blobs = open_blob_store(blob_store, self.home)
        self._engine = make_engine(self.url, busy_timeout_s)
        self._write_engine = self._engine.execution_options(**{_WRITE: True})
        self._listeners: list[CommitListener] = []
        self._ensure_schema()

    def __repr__(self) -> str:
        return f"Registry(url={hide_password(self.url)!r}, home={str(self.home)!r})"

    def close(self) -> None:
        self._engine.dispose()

    def on_commit(self, listener: CommitListener) -> None:
        """Call ``listener(events, registry)`` after each commit that recorded history (a version
        created or removed, an alias or label changed), outside the transaction. A listener given
        twice is called once; one that raises is logged as a warning, and the change stays."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    # -- reading -------------------------------------------------------------------------

    def resolve(self, ref: str | Ref | GapVersion) -> GapVersion:
        with self._tx() as s:
            row = self._resolve_row(s, _as_ref(ref))
            return self._gv(s, row)

    def load_vector(self, gv_or_ref) -> np.ndarray:
        """The float32 [dim] vector, read from its blob and checked against its sha256 and width."""
        return self.load_tensors(gv_or_ref)[gapfile.TENSOR]

    def load_tensors(self, gv_or_ref) -> dict[str, np.ndarray]:
        """``{"gap": vector}`` plus the optional tensors the blob carries (``coral.transform``, ...),
        checked against the blob's sha256 and the registry's width."""
        gv = gv_or_ref if isinstance(gv_or_ref, GapVersion) else self.resolve(gv_or_ref)
        gf = gapfile.decode(self.read_blob(gv), f"gap {gv.ref} ({self.blobs.where(gv.sha256)})")
        if gf.vector.shape[0] != gv.dim:
            raise IntegrityError(
                f"gap {gv.ref}: blob holds {gf.vector.shape[0]} values but the registry says {gv.dim}; "
                "remove the version and import it again"
            )
        return {gapfile.TENSOR: gf.vector, **gf.extras}

    def evaluations(self, ref) -> list[dict]:
        """The evaluations stored on ``ref``'s version (``doge gap eval``), oldest first."""
        with self._tx() as s:
            row = self._resolve_row(s, _as_ref(ref))
            return evaluation_records.of_version(s, row.id)

    def list(self, name: str | None = None, where: dict | None = None, search: str | None = None) -> list[GapVersion]:
        """Live versions, sorted by name then version: all, or those of ``name``, carrying every
        label in ``where`` and matching ``search`` (a case-insensitive substring of the name, the
        description, or a label's key or value)."""
        rows, _ = self.list_rows(name, where=where, search=search)
        return [row.version_object() for row in rows]

    def list_rows(
        self,
        name: str | None = None,
        where: dict | None = None,
        search: str | None = None,
        limit: int | None = None,
    ) -> tuple[builtins.list[VersionRow], int]:
        """What ``list`` lists, as plain rows (no ORM objects, provenance left as its JSON text:
        10,000 versions list in a blink), at most ``limit`` of them; and how many match in all."""
        filters = []
        if name is not None:
            filters.append(GapRow.name == name)
        for key, value in labels.checked_labels(where).items():
            filters.append(GapRow.id.in_(_with_label(key, value)))
        if search:
            filters.append(_matching(search))
        rows_q = select(*_ROW_COLUMNS).where(*filters).order_by(GapRow.name, GapRow.version)
        if limit is not None:
            rows_q = rows_q.limit(limit)
        with self._tx() as s:
            rows = s.connection().execute(rows_q).all()  # Core rows: no ORM objects
            total = len(rows)
            if limit is not None and total == limit:
                total = s.execute(select(func.count()).select_from(GapRow).where(*filters)).scalar_one()
            aliases: defaultdict[int, list[str]] = defaultdict(list)
            labels_of: defaultdict[int, dict[str, str]] = defaultdict(dict)
            if rows:
                ids = select(GapRow.id).where(*filters)
                alias_q = select(AliasRow.version_id, AliasRow.alias).where(AliasRow.version_id.in_(ids))
                for version_id, alias in s.connection().execute(alias_q):
                    aliases[version_id].append(alias)
                label_q = select(LabelRow.version_id, LabelRow.key, LabelRow.value).where(LabelRow.version_id.in_(ids))
                for version_id, key, value in s.connection().execute(label_q):
                    labels_of[version_id][key] = value
        alias_t = {k: tuple(sorted(v)) for k, v in aliases.items()}
        label_d = {k: dict(sorted(v.items())) for k, v in labels_of.items()}
        out = [
            VersionRow(name, v, sha, dim, text, at, by, prov, alias_t.get(i, ()), label_d.get(i) or {})
            for i, name, v, sha, dim, text, at, by, prov in rows
        ]
        return out, total

    def names(self) -> builtins.list[str]:
        with self._tx() as s:
            return self._live_names(s)

    def history(self, name: str) -> builtins.list[dict]:
        """Every change to ``name``, oldest first: versions created and removed, alias moves,
        label changes; each with who, when (UTC), and what it pointed to before and after.
        Removing versions keeps the log."""
        validate_name(name)
        with self._tx() as s:
            rows = s.scalars(select(AuditRow).where(AuditRow.name == name).order_by(AuditRow.id)).all()
            if not rows and s.get(GapName, name) is None:
                raise NotFound(self._unknown_name(s, name))
            return [audit.entry(r) for r in rows]

    # -- writing -------------------------------------------------------------------------

    def create(
        self, name: str, vector, provenance: dict, description: str = "", extras: dict | None = None
    ) -> GapVersion:
        """Store ``vector`` (and any optional ``extras`` tensors, see gapfile) as the next version of ``name``."""
        validate_name(name)
        vector = gapfile.as_gap_vector(vector)
        extras = gapfile.checked_extras(extras, vector.shape[0], f"gap {name!r}")
        prov_text = gapfile.provenance_json(provenance)
        with self._tx(write=True) as s:
            counter = self._lock_name(s, name)
            version = counter.next_version
            # name and version go into the file itself, so an exported file describes itself
            data = gapfile.encode(vector, name, version, provenance, description, extras)
            row = GapRow(
                name=name,
                version=version,
                sha256=self._put_blob(s, data),
                dim=int(vector.shape[0]),
                description=description,
                created_at=_now(),
                created_by=_creator(provenance),
                source="created",
                provenance=prov_text,
            )
            return self._insert(s, counter, row)

    def add_evaluation(self, ref, record: dict) -> dict:
        """Store an evaluation record (``doge.quality.evaluate``) on ``ref``'s version; returns it
        with its ``evaluation_id``."""
        with self._tx(write=True) as s:
            return evaluation_records.add(s, self._resolve_row(s, _as_ref(ref)), record)

    def tag(self, ref, alias: str) -> GapVersion:
        """Point ``alias`` at ``ref``'s version, moving it if it pointed elsewhere."""
        validate_alias(alias)
        r = _as_ref(ref)
        with self._tx(write=True) as s:
            self._lock_name(s, r.name, create=False)
            row = self._resolve_row(s, r)
            self._set_alias(s, row, alias)
            s.flush()
            return self._gv(s, row)

    def untag(self, name: str, alias: str) -> GapVersion:
        """Remove ``alias`` from ``name``; returns the version it pointed at."""
        validate_name(name)
        with self._tx(write=True) as s:
            self._lock_name(s, name, create=False)
            found = s.get(AliasRow, (name, alias))
            if found is None:
                known = s.scalars(select(AliasRow.alias).where(AliasRow.name == name)).all()
                have = f"its aliases: {', '.join(sorted(known))}" if known else "it has no aliases"
                raise NotFound(f"gap {name!r} has no alias {alias!r}; {have}")
            row = s.get(GapRow, found.version_id)
            s.delete(found)
            audit.record(s, name, row.version, audit.ALIAS_REMOVED, {"alias": alias, "version": row.version}, None)
            s.flush()
            return self._gv(s, row)

    def label(self, ref, values: dict | None = None, remove=()) -> GapVersion:
        """Set ``key=value`` labels on ``ref``'s version and remove the keys in ``remove``."""
        new, gone = labels.checked_labels(values), [labels.validate_key(k) for k in remove]
        both = sorted(k for k in gone if k in new)
        if both:
            raise DogeError(f"label {both[0]!r} is both set and removed: do one")
        if not new and not gone:
            raise DogeError("give labels to set (key=value) or keys to remove")
        r = _as_ref(ref)
        with self._tx(write=True) as s:
            self._lock_name(s, r.name, create=False)
            row = self._resolve_row(s, r)
            for key in gone:
                found = s.get(LabelRow, (row.id, key))
                if found is None:
                    have = ", ".join(sorted(self._labels_of(s, row.id))) or "none"
                    raise NotFound(f"gap {r.name}@v{row.version} has no label {key!r} (its labels: {have})")
                s.delete(found)
                before: dict[str, Any] | None = {"key": key, "value": found.value}
                audit.record(s, r.name, row.version, audit.LABEL_REMOVED, before, None)
            for key, value in new.items():
                found = s.get(LabelRow, (row.id, key))
                if found is not None and found.value == value:
                    continue
                before = None if found is None else {"key": key, "value": found.value}
                if found is None:
                    s.add(LabelRow(version_id=row.id, key=key, value=value))
                else:
                    found.value = value
                audit.record(s, r.name, row.version, audit.LABEL_SET, before, {"key": key, "value": value})
            s.flush()
            return self._gv(s, row)

    def remove(self, ref) -> GapVersion:
        """Delete one version, its aliases and labels; its number is never handed out again, and
        the history keeps what it was."""
        r = _as_ref(ref)
        with self._tx(write=True) as s:
            self._lock_name(s, r.name, create=False)
            row = self._resolve_row(s, r)
            gv = self._gv(s, row)
            for alias in gv.aliases:  # each its own entry, so history shows the alias gone with the version
                audit.record(s, gv.name, gv.version, audit.ALIAS_REMOVED, {"alias": alias, "version": gv.version}, None)
            s.execute(delete(AliasRow).where(AliasRow.version_id == row.id))
            s.execute(delete(LabelRow).where(LabelRow.version_id == row.id))
            evaluation_records.remove_all(s, row.id)
            attached = self._drop_attachments(s, row.id)
            s.delete(row)
            before = {"version": gv.version, "sha256": gv.sha256, "aliases": list(gv.aliases), "labels": gv.labels}
            audit.record(s, gv.name, gv.version, audit.VERSION_REMOVED, before, None)
        # only after the commit: a failed removal must leave the blob in place. The removal has
        # happened once the transaction commits; a blob left behind is garbage, not a failure.
        try:
            self._collect_blob(gv.sha256)
        except (DogeError, OSError) as e:
            log.warning(
                "removed %s, but its blob %s stays in the blob store (%s); `doge registry gc` deletes it later",
                gv.ref,
                gv.sha256[:12],
                first_line(e),
            )
        try:
            self._collect_attachment_blobs(attached)
        except (DogeError, OSError) as e:
            log.warning("removed %s, but a preview or plot stays in the blob store (%s)", gv.ref, first_line(e))
        return gv

    def export(self, ref, path) -> GapVersion:
        """Write the version's file to ``path`` (``*.safetensors``); the bytes are the blob's."""
        dest = Path(path)
        gv = self.resolve(ref)
        if dest.is_dir():
            raise DogeError(f"{dest} is a folder: name the file, e.g. {dest / gv.file_name()}")
        if dest.suffix.lower() != gapfile.SUFFIX:
            raise DogeError(f"export writes safetensors: name the file *{gapfile.SUFFIX}, e.g. {gv.file_name()}")
        write_atomic(dest, self.blobs.get(gv.sha256, f"gap {gv.ref}"))
        return gv

    def import_file(self, path, as_name: str | None = None) -> GapVersion:
        """Add a gap file as the next version of its name (or ``as_name``); idempotent."""
        src = Path(path)
        data = _read_import(src)
        gf = gapfile.decode(data, str(src))
        if as_name is not None and not as_name.strip():
            raise DogeError("--as needs a name: give the gap's new name, or leave --as out to keep the file's own")
        name = as_name or gf.name
        if not name:
            raise DogeError(f"{src} does not name its gap (no 'doge.name' metadata): give a name to import it as")
        validate_name(name)
        provenance = {**gapfile.provenance_of(gf, str(src)), "imported_from": str(src.resolve())}
        prov_text = gapfile.provenance_json(provenance)  # refused before any blob is written
        sha = sha256_hex(data)
        with self._tx(write=True) as s:
            counter = self._lock_name(s, name)
            latest = self._latest_row(s, name)
            if latest is not None and latest.sha256 == sha:
                return self._gv(s, latest)
            row = GapRow(
                name=name,
                version=counter.next_version,
                sha256=self._put_blob(s, data),  # the file's own bytes: export -> import keeps the sha
                dim=int(gf.vector.shape[0]),
                description=gf.description or str(provenance.get("description", "")),
                created_at=_now(),
                created_by=_creator(provenance),
                source=f"imported from {src}",
                provenance=prov_text,
            )
            return self._insert(s, counter, row)

    # -- copies made elsewhere: push, pull, bundles (the rules are in copying.py) --------

    def read_blob(self, gv: GapVersion) -> bytes:
        """The bytes of ``gv``'s blob, checked against its sha256."""
        return self.blobs.get(gv.sha256, f"gap {gv.ref}")

    def add_versions(self, items, new_version: bool = False, where: str = "this registry") -> builtins.list:
        """Store copies of versions made elsewhere (``copying.IncomingVersion`` objects), all or nothing.

        Each keeps its bytes (so its sha256) and, where free, its number (``copying.place``);
        its aliases are set, moving them if they pointed elsewhere. Every item is placed before
        any blob is written, so a refused copy writes nothing; then blobs go first and rows after
        them, all in one transaction: an interrupted copy leaves at most unreferenced blobs,
        never a row without its blob. Returns a ``copying.Placement`` per item.
        """
        for item in items:  # every record refused before any blob is written
            try:
                records.check_incoming(item)
                gapfile.provenance_json(item.provenance)
            except DogeError as e:
                raise DogeError(f"{first_line(e)}; nothing was stored") from None
        with self._tx(write=True) as s:
            placed = []
            for item, counter, version, present in self._place_copies(s, items, new_version, where):
                if present:
                    row = self._resolve_row(s, Ref(item.name, version=version))
                else:
                    row = self._insert_copy(s, counter, item, version)
                for alias in item.aliases:
                    self._set_alias(s, row, alias)
                s.flush()
                self._copy_extras(s, row, item)
                placed.append(Placement(item, self._gv(s, row), PRESENT if present else ADDED))
        return placed

    def _place_copies(self, s: Session, items, new_version: bool, where: str) -> builtins.list[tuple]:
        """(item, its name's locked counter, version, already there) for each item, in order.

        Items that keep their numbers are placed first, so that with ``new_version`` only the
        conflicting ones are renumbered.
        """
        names: dict[str, tuple[GapName, dict[int, str]]] = {}

        def place_one(item, renumber: bool) -> tuple:
            if item.name not in names:
                counter = self._lock_name(s, item.name)
                q = select(GapRow.version, GapRow.sha256).where(GapRow.name == item.name)
                names[item.name] = (counter, {version: sha for version, sha in s.execute(q)})
            counter, existing = names[item.name]
            next_version = max([counter.next_version, *(v + 1 for v in existing)])
            version, present = place(item, existing, next_version, new_version=renumber, where=where)
            existing[version] = item.sha256  # later items of the same name see this one
            return item, counter, version, present

        plan, conflicting = {}, []
        for i, item in enumerate(items):
            try:
                plan[i] = place_one(item, renumber=False)
            except VersionConflict:
                if not new_version:
                    raise
                conflicting.append(i)
        for i in conflicting:
            plan[i] = place_one(items[i], renumber=True)
        return [plan[i] for i in range(len(items))]

    def _insert_copy(self, s: Session, counter: GapName, item, version: int) -> GapRow:
        if sha256_hex(item.data) != item.sha256:
            raise IntegrityError(
                f"{item.ref}: its bytes do not match its sha256 {item.sha256[:12]}; nothing was stored"
            )
        row = GapRow(
            name=item.name,
            version=version,
            sha256=self._put_blob(s, item.data),
            dim=item.dim,
            description=item.description,
            created_at=item.created_at,
            created_by=item.created_by,
            source=item.source,
            provenance=gapfile.provenance_json(item.provenance),
        )
        before = counter.next_version
        self._insert(s, counter, row)
        counter.next_version = max(before, version + 1)  # a renumbered copy may come before a higher kept one
        for key, value in sorted(item.labels.items()):
            s.add(LabelRow(version_id=row.id, key=key, value=value))
            audit.record(s, row.name, row.version, audit.LABEL_SET, None, {"key": key, "value": value})
        return row

    def _copy_extras(self, s: Session, row: GapRow, item) -> None:
        """Store ``item``'s evaluations and attached images on ``row`` unless already there (a copy
        made twice adds nothing); a plot keeps pointing at its evaluation."""
        from .attachments import PNG_SUFFIX, check_png
        from .models import AttachmentRow

        have = {e.metrics: e.id for e in s.scalars(select(EvaluationRow).where(EvaluationRow.version_id == row.id))}
        ids: dict[int, int] = {}  # the evaluation's id where it came from -> its id here
        for record in item.evaluations:
            metrics = {k: v for k, v in record.items() if k not in ("evaluation_id", "stored_at")}
            text = gapfile.provenance_json(metrics)
            if text not in have:
                stored = evaluation_records.add(s, row, metrics, _parse_time(record.get("stored_at")))
                have[text] = stored["evaluation_id"]
            if isinstance(record.get("evaluation_id"), int):
                ids[record["evaluation_id"]] = have[text]
        q = select(AttachmentRow.kind, AttachmentRow.sha256).where(AttachmentRow.version_id == row.id)
        attached = {(kind, sha) for kind, sha in s.execute(q)}
        for a in item.attachments:
            if (a["kind"], a["sha256"]) in attached:
                continue
            data = check_png(a["data"], f"{a['kind']} of {item.ref}")
            if sha256_hex(data) != a["sha256"]:
                raise IntegrityError(f"{item.ref}: a {a['kind']}'s bytes do not match its sha256; nothing was stored")
            self._lock_blob(s, a["sha256"])
            self.blobs.put(data, PNG_SUFFIX)
            s.add(
                AttachmentRow(
                    version_id=row.id,
                    kind=a["kind"],
                    sha256=a["sha256"],
                    size=len(data),
                    evaluation_id=ids.get(a.get("evaluation_id")) if a.get("evaluation_id") is not None else None,
                    created_at=_parse_time(a.get("created_at")) or _now(),
                    created_by=str(a.get("created_by") or ""),
                    settings=gapfile.provenance_json(a.get("settings") or {}),
                )
            )
            attached.add((a["kind"], a["sha256"]))
        s.flush()

    def _set_alias(self, s: Session, row: GapRow, alias: str) -> None:
        """Point ``alias`` of ``row``'s name at it (moving it if it pointed elsewhere), with history."""
        existing = s.get(AliasRow, (row.name, alias))
        after = {"alias": alias, "version": row.version}
        if existing is None:
            s.add(AliasRow(name=row.name, alias=alias, version_id=row.id))
            audit.record(s, row.name, row.version, audit.ALIAS_SET, None, after)
        elif existing.version_id != row.id:
            before = {"alias": alias, "version": s.get_one(GapRow, existing.version_id).version}
            existing.version_id = row.id
            audit.record(s, row.name, row.version, audit.ALIAS_MOVED, before, after)

    # -- internals -----------------------------------------------------------------------

    @contextmanager
    def _tx(self, write: bool = False):
        engine = self._write_engine if write else self._engine
        with db_errors(self.url), Session(engine, expire_on_commit=False) as s:
            with s.begin():
                yield s
            changes = [audit.entry(r) for r in s.info.pop(audit.PENDING, [])]
        if changes and self._listeners:  # committed: tell the listeners, outside the transaction
            where = hide_password(self.url)
            for listener in self._listeners:
                try:
                    listener(changes, where)
                except Exception as exc:  # the change is committed; a broken listener must not undo it
                    log.warning("after a commit to %s, %r failed: %s", where, listener, exc)

    def _ref(self, ref) -> Ref:
        return _as_ref(ref)

    def _ensure_schema(self) -> None:
        with db_errors(self.url, opening=True):
            schema.check(self._engine, self._write_engine, self.url)

    @overload
    def _lock_name(self, s: Session, name: str) -> GapName: ...
    @overload
    def _lock_name(self, s: Session, name: str, create: Literal[False]) -> GapName | None: ...
    def _lock_name(self, s: Session, name: str, create: bool = True) -> GapName | None:
        """The name's counter row, locked for this transaction (created if missing and asked to)."""
        q = select(GapName).where(GapName.name == name).with_for_update().execution_options(populate_existing=True)
        row = s.scalars(q).one_or_none()
        if row is None and create:
            s.execute(_insert_ignore(s, GapName, {"name": name, "next_version": 1}))
            row = s.scalars(q).one()
        return row

    def _insert(self, s: Session, counter: GapName, row: GapRow) -> GapVersion:
        counter.next_version = row.version + 1
        s.add(row)
        after = {"version": row.version, "sha256": row.sha256, "source": row.source}
        audit.record(s, row.name, row.version, audit.VERSION_CREATED, None, after)
        s.flush()
        return _gv(row, ())

    def _lock_blob(self, s: Session, sha: str) -> None:
        # SQLite writers already hold the database's write lock; PostgreSQL needs one per blob so
        # that a removal's cleanup and a new row that shares the blob never interleave.
        advisory_lock(s.connection(), int(sha[:15], 16))

    def _put_blob(self, s: Session, data: bytes) -> str:
        sha = sha256_hex(data)
        self._lock_blob(s, sha)
        self.blobs.put(data)
        return sha

    def _collect_blob(self, sha: str) -> bool:
        """Delete blob ``sha`` if no row uses it (checked under the blob's lock); True if deleted."""
        with self._tx(write=True) as s:
            self._lock_blob(s, sha)
            users = s.scalar(select(func.count()).select_from(GapRow).where(GapRow.sha256 == sha))
            if not users:
                self.blobs.delete(sha)
            return not users

    def _latest_row(self, s: Session, name: str) -> GapRow | None:
        q = select(GapRow).where(GapRow.name == name).order_by(GapRow.version.desc()).limit(1)
        return s.scalars(q).first()

    def _resolve_row(self, s: Session, ref: Ref) -> GapRow:
        if ref.version is not None and not 1 <= ref.version <= MAX_VERSION:  # a Ref made in Python
            raise NotFound(f"gap {ref.name}@v{ref.version} not found: versions run from v1 to v{MAX_VERSION}")
        if ref.version is not None:
            q = select(GapRow).where(GapRow.name == ref.name, GapRow.version == ref.version)
            row = s.scalars(q).first()
        elif ref.alias is not None:
            q = (
                select(GapRow)
                .join(AliasRow, AliasRow.version_id == GapRow.id)
                .where(AliasRow.name == ref.name, AliasRow.alias == ref.alias)
            )
            row = s.scalars(q).first()
        else:
            row = self._latest_row(s, ref.name)
        if row is None:
            raise self._not_found(s, ref)
        return row

    def _not_found(self, s: Session, ref: Ref) -> NotFound:
        versions = s.scalars(select(GapRow.version).where(GapRow.name == ref.name).order_by(GapRow.version)).all()
        if not versions:
            return NotFound(self._unknown_name(s, ref.name))
        aliases = sorted(s.scalars(select(AliasRow.alias).where(AliasRow.name == ref.name)))
        have = f"{ref.name!r} has versions {_fmt_versions(versions)}"
        have += f" and aliases {', '.join(aliases)}" if aliases else " and no aliases"
        if ref.alias is not None:
            return NotFound(f"no alias {ref.alias!r} on gap {ref.name!r}: {have}; tag one first")
        counter = s.get(GapName, ref.name)
        gone = (
            " (it was removed)"
            if counter and ref.version is not None and 0 < ref.version < counter.next_version
            else ""
        )
        return NotFound(f"gap {str(ref)!r} not found{gone}: {have}")

    def _unknown_name(self, s: Session, name: str) -> str:
        if s.get(GapName, name) is not None:
            return f"every version of gap {name!r} was removed; create or import it again"
        names = self._live_names(s)
        if not names:
            return f"no gap named {name!r}: the registry is empty; create or import a gap first"
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
        if close:
            return f"no gap named {name!r}; did you mean {', '.join(map(repr, close))}?"
        return f"no gap named {name!r}; list the gaps with 'doge gap list'"

    def _live_names(self, s: Session) -> builtins.list[str]:
        return sorted(s.scalars(select(GapRow.name).distinct()))

    def _aliases_of(self, s: Session, version_id: int) -> tuple[str, ...]:
        q = select(AliasRow.alias).where(AliasRow.version_id == version_id)
        return tuple(sorted(s.scalars(q)))

    def _labels_of(self, s: Session, version_id: int) -> dict[str, str]:
        q = select(LabelRow.key, LabelRow.value).where(LabelRow.version_id == version_id)
        return dict(sorted(s.execute(q).tuples()))

    def _gv(self, s: Session, row: GapRow) -> GapVersion:
        return _gv(row, self._aliases_of(s, row.id), self._labels_of(s, row.id))


def registry_info(home=None, url: str | None = None, blob_store=None) -> dict:
    """Where the registry is (password hidden), its schema revision and what it holds; opens
    registries of any revision and writes nothing."""
    home = doge_home(home).resolve()
    url = _registry_url(home, url)
    engine = make_engine(url)
    try:
        with db_errors(url, opening=True), engine.connect() as conn:
            revision = schema.current_revision(conn)
            have = set(inspect(conn).get_table_names())
            counts = {key: conn.execute(q).scalar_one() for key, (table, q) in _COUNTS.items() if table in have}
    finally:
        engine.dispose()
    head = schema.head_revision()
    return {
        "url": hide_password(url),
        "backend": engine.dialect.name,
        "schema_revision": revision,
        "head_revision": head,
        "up_to_date": revision in (None, head),
        "blob_store": open_blob_store(blob_store, home).url,
        "counts": counts,
    }


def upgrade_registry(home=None, url: str | None = None) -> dict:
    """Migrate the registry's schema to this doge's revision, in one transaction."""
    home = doge_home(home).resolve()
    url = _registry_url(home, url)
    engine = make_engine(url)
    try:
        with db_errors(url, opening=True):
            before, after = schema.upgrade(engine.execution_options(**{_WRITE: True}), url)
    finally:
        engine.dispose()
    return {"url": hide_password(url), "before": before, "after": after, "changed": before != after}


_ROW_COLUMNS = (  # a VersionRow's columns, after the row id
    GapRow.id,
    GapRow.name,
    GapRow.version,
    GapRow.sha256,
    GapRow.dim,
    GapRow.description,
    GapRow.created_at,
    GapRow.created_by,
    GapRow.provenance,
)

_COUNTS = {  # what `doge registry info` counts, and the table each needs
    "names": ("gap_versions", select(func.count(distinct(GapRow.name)))),
    "versions": ("gap_versions", select(func.count()).select_from(GapRow)),
    "blobs": ("gap_versions", select(func.count(distinct(GapRow.sha256)))),
    "aliases": ("gap_aliases", select(func.count()).select_from(AliasRow)),
    "labels": ("gap_labels", select(func.count()).select_from(LabelRow)),
    "history": ("gap_audit", select(func.count()).select_from(AuditRow)),
}


def _registry_url(home: Path, url: str | None) -> str:
    url = url or os.environ.get("DOGE_REGISTRY_URL") or None
    if url is None:
        make_dirs(home)
        url = f"sqlite:///{home / 'registry.db'}"
    return str(url)


def _with_label(key: str, value: str):
    return select(LabelRow.version_id).where(LabelRow.key == key, LabelRow.value == value)


def _matching(text: str):
    """Versions whose name, description, or a label's key or value holds ``text``, any case."""
    needle = text.lower()

    def holds(column: ColumnExpressionArgument[str]) -> ColumnElement[bool]:
        return func.lower(column).contains(needle, autoescape=True)

    in_labels = select(LabelRow.version_id).where(or_(holds(LabelRow.key), holds(LabelRow.value)))
    return or_(holds(GapRow.name), holds(GapRow.description), GapRow.id.in_(in_labels))


def _insert_ignore(s: Session, model, values: dict):
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(model).values(**values).on_conflict_do_nothing()
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(model).values(**values).on_conflict_do_nothing()
    # other databases: the unique key still refuses a duplicate
    return insert(model).values(**values)


def _read_import(src: Path) -> bytes:
    if not src.is_file():
        raise NotFound(f"{src}: no such file; give the path of a .safetensors gap file")
    gapfile.refuse_pickle_suffix(src.suffix, str(src))
    if src.stat().st_size > MAX_IMPORT_BYTES:
        raise DogeError(f"{src} is larger than {MAX_IMPORT_BYTES >> 20} MiB: not a gap file")
    return src.read_bytes()


def _as_ref(ref) -> Ref:
    if isinstance(ref, GapVersion):
        return Ref(ref.name, version=ref.version)
    return ref if isinstance(ref, Ref) else parse_ref(ref)


def _gv(row: GapRow, aliases: tuple[str, ...], labels_: dict | None = None) -> GapVersion:
    return GapVersion(
        name=row.name,
        version=row.version,
        sha256=row.sha256,
        dim=row.dim,
        description=row.description,
        created_at=_utc(row.created_at),
        created_by=row.created_by,
        aliases=aliases,
        provenance=records.stored_provenance(row.provenance),
        labels=dict(labels_ or {}),
    )


def _parse_time(text) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _utc(dt: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored one is UTC.
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _creator(provenance: dict) -> str:
    return str(provenance.get("created_by") or who())


def _fmt_versions(versions: Sequence[int]) -> str:
    vs = [f"v{v}" for v in versions]
    return ", ".join(vs if len(vs) <= 8 else [*vs[:3], "...", *vs[-3:]])
