"""Checking a registry and cleaning it: ``doge registry check`` and ``doge registry gc``.

``check`` reads every version's blob once: it must exist, match its sha256, be a readable gap
file and hold as many values as the row says; every attachment's PNG (previews, plots) must
exist and match its sha256; every alias must point at a live version of its own name. Blobs that
no row refers to (left by an interrupted push or import) are listed, and are not damage: ``gc``
removes them.

``gc`` is safe beside a create running at the same time: a create writes its blob first and its
row after, in one transaction that holds the blob's lock (the write lock on SQLite, an advisory
lock on PostgreSQL). gc leaves alone every blob younger than a grace age, and removes an older
one only under that same lock after counting again that no row uses it. The temp file of a write
in progress (``.<blob>.*.part``, renamed into place when whole) is never collected: gc removes
such files only once they are :data:`LEFTOVER_MIN_AGE_S` old, whatever ``--grace`` says, since
no write takes that long.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from doge.errors import DogeError, IntegrityError, first_line
from doge.urls import hide_password

from . import audit, evaluations, gapfile, records
from .attachments import PNG_SUFFIX, attachment_record
from .models import AliasRow, AttachmentRow, AuditRow, EvaluationRow, GapRow, LabelRow
from .registry import Registry

GRACE_S = 3600.0  # gc keeps unreferenced blobs younger than this: a create may be about to commit its row
LEFTOVER_MIN_AGE_S = 600.0  # a temp file younger than this may be a write in progress: never collected

# kinds of damage
MISSING = "missing-blob"
CORRUPT = "corrupt-blob"
UNREADABLE = "unreadable-blob"
WRONG_DIM = "wrong-dim"
DANGLING_ALIAS = "dangling-alias"
DAMAGED_RECORD = "damaged-record"  # a stored record that breaks its schema (records.py)


@dataclass
class CheckReport:
    url: str
    blob_store: str
    versions: int = 0
    blobs: int = 0  # distinct blobs the rows refer to
    problems: list[dict] = field(default_factory=list)  # {"kind", "ref", "sha256", "message"}
    unreferenced: list[dict] = field(default_factory=list)  # {"sha256", "where", "age_s"}
    leftovers: list[dict] = field(default_factory=list)  # temp files of interrupted writes

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return {
            "ok": self.ok,
            "url": self.url,
            "blob_store": self.blob_store,
            "versions": self.versions,
            "blobs": self.blobs,
            "problems": self.problems,
            "unreferenced": self.unreferenced,
            "leftovers": self.leftovers,
        }


def check(registry: Registry) -> CheckReport:
    """Every damage the registry holds, and what gc would collect; changes nothing."""
    report = CheckReport(hide_password(registry.url), registry.blobs.url)
    with registry._tx() as s:
        rows = s.execute(select(GapRow.id, GapRow.name, GapRow.version, GapRow.sha256, GapRow.dim)).all()
        aliases = s.execute(
            select(AliasRow.name, AliasRow.alias, AliasRow.version_id, GapRow.name)
            .select_from(AliasRow)
            .outerjoin(GapRow, GapRow.id == AliasRow.version_id)
        ).all()
        attached = s.execute(
            select(AttachmentRow.id, AttachmentRow.kind, AttachmentRow.sha256, GapRow.name, GapRow.version).join(
                GapRow, GapRow.id == AttachmentRow.version_id
            )
        ).all()
    report.versions = len(rows)
    by_sha: dict[str, list] = {}
    for row in sorted(rows, key=lambda r: (r.name, r.version)):
        by_sha.setdefault(row.sha256, []).append(row)
    report.blobs = len(by_sha)
    for sha, users in by_sha.items():
        report.problems += _check_blob(registry, sha, users)
    for name, alias, version_id, target_name in aliases:
        if target_name != name:
            what = "a removed version" if target_name is None else f"a version of {target_name!r}"
            report.problems.append(
                _problem(
                    DANGLING_ALIAS,
                    f"{name}@{alias}",
                    None,
                    f"alias {name}@{alias} points at {what} (row {version_id}); "
                    f"tag it again: doge gap tag {name}@vN {alias}",
                )
            )
    pngs = {a.sha256 for a in attached}
    for a in attached:
        report.problems += _check_png(registry, a)
    for suffix, used in ((gapfile.SUFFIX, by_sha), (PNG_SUFFIX, pngs)):
        for sha, age in _stored(registry, suffix):
            if sha not in used:
                where = registry.blobs.where(sha, suffix)
                report.unreferenced.append({"sha256": sha, "where": where, "age_s": _round(age)})
    report.unreferenced.sort(key=lambda b: b["sha256"])
    report.leftovers = [{"where": str(path), "age_s": _round(age)} for path, age in registry.blobs.leftovers()]
    report.problems += damaged_records(registry)
    return report


def damaged_records(registry: Registry) -> list[dict]:
    """Every stored record that breaks its schema (written by another tool, or by hand):
    provenance, labels, aliases, evaluations, previews, plots and history entries."""
    found = []

    def damaged(ref: str, message: str) -> None:
        found.append(_problem(DAMAGED_RECORD, ref, None, message))

    with registry._tx() as s:
        refs = {i: f"{n}@v{v}" for i, n, v in s.execute(select(GapRow.id, GapRow.name, GapRow.version))}
        for version_id, provenance in s.execute(select(GapRow.id, GapRow.provenance)):
            problem = records.stored_provenance(provenance).get("damaged")
            if isinstance(problem, str) and problem.startswith("the stored provenance is damaged"):
                damaged(refs[version_id], f"{refs[version_id]}: {problem}")
        for version_id, key, value in s.execute(select(LabelRow.version_id, LabelRow.key, LabelRow.value)):
            problem = records.damage("label", {key: value})
            if problem:
                ref = refs.get(version_id, f"row {version_id}")
                damaged(ref, f"{ref}: a label is damaged: {problem}")
        for name, alias in s.execute(select(AliasRow.name, AliasRow.alias)):
            problem = records.damage("alias", alias)
            if problem:
                damaged(f"{name}@{alias}", f"alias {name!r} {alias!r} is damaged: {problem}")
        for row in s.scalars(select(EvaluationRow).order_by(EvaluationRow.id)):
            record = evaluations.as_record(row)
            if "damaged" in record:
                damaged(f"{row.name}@v{row.version}", record["damaged"])
        for row in s.scalars(select(AttachmentRow).order_by(AttachmentRow.id)):
            ref = refs.get(row.version_id, f"row {row.version_id}")
            record = attachment_record(row, ref)
            if "damaged" in record:
                damaged(ref, record["damaged"])
        for row in s.scalars(select(AuditRow).order_by(AuditRow.id)):
            entry = audit.entry(row)
            if "damaged" in entry:
                damaged(str(row.name), f"{row.name}: {entry['damaged']}")
    return found


def gc(registry: Registry, *, dry_run: bool = False, grace_s: float = GRACE_S) -> dict:
    """Remove blobs no row refers to, and temp files of interrupted writes, older than ``grace_s``.

    Returns what was (or, with ``dry_run``, would be) removed and what was kept as too young."""
    if grace_s < 0:
        raise DogeError("the grace age cannot be negative")
    with registry._tx() as s:
        used = set(s.scalars(select(GapRow.sha256).distinct()))
        used_pngs = set(s.scalars(select(AttachmentRow.sha256).distinct()))
    removed, kept = [], []
    # each kind with its users, and the collector that counts them again under the blob's lock
    kinds = ((gapfile.SUFFIX, used, registry._collect_blob), (PNG_SUFFIX, used_pngs, registry._collect_png))
    for suffix, users, collect in kinds:
        for sha, age in sorted(_stored(registry, suffix)):
            if sha in users:
                continue
            entry = {"sha256": sha, "where": registry.blobs.where(sha, suffix), "age_s": _round(age)}
            if age is None or age < grace_s:
                kept.append(entry)
            elif dry_run or collect(sha):
                removed.append(entry)
    leftovers = []
    leftover_age = max(grace_s, LEFTOVER_MIN_AGE_S)  # --grace 0 does not lower it: a write may be in flight
    for path, age in registry.blobs.leftovers():
        if age >= leftover_age:
            if not dry_run:
                path.unlink(missing_ok=True)
            leftovers.append({"where": str(path), "age_s": _round(age)})
    return {
        "dry_run": dry_run,
        "grace_s": grace_s,
        "removed": removed,
        "kept_young": kept,
        "leftovers_removed": leftovers,
    }


def check_version(registry: Registry, gv, deep: bool = True) -> list[dict]:
    """The damage to one version's blob (``doge gap show`` says it): [] when it is whole.
    Not ``deep``: only that the blob is there with its sha256 (no numpy to import)."""
    return _check_blob(registry, gv.sha256, [gv], deep)


def _check_blob(registry: Registry, sha: str, users: list, deep: bool = True) -> list[dict]:
    refs = ", ".join(f"{u.name}@v{u.version}" for u in users)
    where = registry.blobs.where(sha)
    try:
        data = registry.blobs.get(sha, f"gap {refs}")
    except IntegrityError as e:
        kind = CORRUPT if registry.blobs.exists(sha) else MISSING
        return [_problem(kind, u, sha, first_line(e)) for u in users]
    except DogeError as e:  # a remote store that cannot be read
        return [_problem(UNREADABLE, u, sha, first_line(e)) for u in users]
    if not deep:
        return []
    try:
        width = gapfile.decode(data, f"gap {refs} ({where})").vector.shape[0]
    except DogeError as e:
        return [_problem(UNREADABLE, u, sha, first_line(e)) for u in users]
    return [
        _problem(
            WRONG_DIM,
            u,
            sha,
            f"gap {u.name}@v{u.version}: blob {where} holds {width} values but the registry says {u.dim}; "
            "remove the version and import it again",
        )
        for u in users
        if u.dim != width
    ]


def _check_png(registry: Registry, a) -> list[dict]:
    """An attachment's PNG must be in the store with its sha256."""
    ref = f"{a.name}@v{a.version} {a.kind} {a.id}"
    try:
        registry.blobs.get(a.sha256, ref, PNG_SUFFIX)
    except IntegrityError as e:
        kind = CORRUPT if registry.blobs.exists(a.sha256, PNG_SUFFIX) else MISSING
        return [_problem(kind, ref, a.sha256, first_line(e))]
    except DogeError as e:
        return [_problem(UNREADABLE, ref, a.sha256, first_line(e))]
    return []


def _problem(kind: str, row_or_ref, sha: str | None, message: str) -> dict:
    ref = row_or_ref if isinstance(row_or_ref, str) else f"{row_or_ref.name}@v{row_or_ref.version}"
    return {"kind": kind, "ref": ref, "sha256": sha, "message": message}


def _stored(registry: Registry, suffix: str):
    try:
        yield from registry.blobs.stored(suffix)
    except OSError as e:
        raise DogeError(f"cannot list the blob store {registry.blobs.url}: {e.strerror or first_line(e)}") from None


def _round(age: float | None) -> float | None:
    return None if age is None else round(age, 1)
