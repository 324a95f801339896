"""Bundles: several gap versions in one ``.doge`` file, to mail, attach or publish.

A bundle is a zip holding ``doge-bundle.json`` (format, creation time, one entry per version:
name, version, aliases, labels, sha256, dim, description, provenance, member) and the blobs,
``blobs/<sha256>.safetensors``, byte for byte as the registry stores them.

Reading trusts nothing: the format string, every member's name (no absolute paths, ``..``,
drive letters, links, or names the manifest does not list), declared and actual sizes, each
blob's sha256 and its validity as a gap file are all checked before anything is stored, and
members are read into memory by name: nothing from the archive becomes a path on disk.
"""

from __future__ import annotations

import io
import json
import re
import stat
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from doge.atomic import write_atomic
from doge.clock import now_iso
from doge.errors import DogeError, NotFound, first_line
from doge.names import MAX_VERSION, validate_alias, validate_name

from . import gapfile, records
from .attachments import KINDS, PNG_SUFFIX, check_png
from .blobs import sha256_hex
from .copying import IncomingVersion, Placement, with_origin
from .labels import checked_labels
from .transfer import attached_from

if TYPE_CHECKING:
    from .registry import GapVersion, Registry

FORMAT = "doge-bundle/1"
MANIFEST = "doge-bundle.json"
SUFFIX = ".doge"
MAX_MEMBER_BYTES = 64 * 1024 * 1024
MAX_TOTAL_BYTES = 1024 * 1024 * 1024
MAX_MEMBERS = 10_000
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member times: the same gaps give the same members


@dataclass(frozen=True)
class BundleEntry:
    name: str
    version: int
    sha256: str
    dim: int
    description: str = ""
    created_at: str = ""
    created_by: str = ""
    aliases: tuple[str, ...] = ()
    labels: dict = field(default_factory=dict, hash=False)
    provenance: dict = field(default_factory=dict, hash=False)
    evaluations: tuple = field(default=(), hash=False)  # records, as Registry.evaluations gives them
    attachments: tuple = field(default=(), hash=False)  # previews and plots: records without their bytes

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"

    @property
    def member(self) -> str:
        return member_name(self.sha256)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "aliases": list(self.aliases),
            "labels": self.labels,
            "sha256": self.sha256,
            "dim": self.dim,
            "description": self.description,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "provenance": self.provenance,
            "member": self.member,
            "evaluations": list(self.evaluations),
            "attachments": list(self.attachments),
        }


@dataclass(frozen=True)
class Bundle:
    path: Path
    created_at: str
    entries: tuple[BundleEntry, ...]
    blobs: dict = field(hash=False)  # sha256 -> bytes, each checked
    images: dict = field(default_factory=dict, hash=False)  # attachments: sha256 -> PNG bytes, each checked


def member_name(sha: str) -> str:
    return f"blobs/{sha}{gapfile.SUFFIX}"


def attachment_member(sha: str) -> str:
    return f"attachments/{sha}{PNG_SUFFIX}"


# -- writing ---------------------------------------------------------------------------------


def write_bundle(registry: Registry, refs: Iterable, path) -> list[GapVersion]:
    """Write ``refs`` (every live version when none is given) of ``registry`` to ``path``."""
    dest = Path(path)
    if dest.suffix.lower() != SUFFIX:
        raise DogeError(f"a bundle is a *{SUFFIX} file: name it e.g. {dest.with_suffix(SUFFIX).name}")
    if dest.is_dir():
        raise DogeError(f"{dest} is a folder: name the bundle file, e.g. {dest / ('library' + SUFFIX)}")
    refs = list(refs)
    found = [registry.resolve(r) for r in refs] if refs else registry.list()
    if not found:
        raise DogeError("the registry is empty: there is nothing to bundle")
    versions = sorted({gv.ref: gv for gv in found}.values(), key=lambda gv: (gv.name, gv.version))
    blobs = {gv.sha256: registry.read_blob(gv) for gv in versions}
    entries, images = [], {}
    for gv in versions:
        attached = attached_from(registry, gv)
        images.update({a["sha256"]: a["data"] for a in attached})
        entry = _entry_of(gv, registry.evaluations(gv), [_attachment_entry(a) for a in attached])
        entries.append(entry.to_json())
    manifest = {"format": FORMAT, "created_at": now_iso(), "entries": entries}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_zip_info(MANIFEST), json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False))
        for sha, data in blobs.items():
            zf.writestr(_zip_info(member_name(sha)), data)
        for sha, data in sorted(images.items()):
            zf.writestr(_zip_info(attachment_member(sha)), data)
    write_atomic(dest, buffer.getvalue())
    return versions


def _attachment_entry(a: dict) -> dict:
    keep = ("kind", "sha256", "size", "evaluation_id", "created_at", "created_by", "settings")
    return {**{k: a[k] for k in keep}, "member": attachment_member(a["sha256"])}


def _entry_of(gv: GapVersion, evaluations=(), attachments=()) -> BundleEntry:
    return BundleEntry(
        name=gv.name,
        version=gv.version,
        sha256=gv.sha256,
        dim=gv.dim,
        description=gv.description,
        created_at=gv.created_at.isoformat().replace("+00:00", "Z"),
        created_by=gv.created_by,
        aliases=tuple(gv.aliases),
        labels=dict(gv.labels),
        provenance=gv.provenance,
        evaluations=tuple(evaluations),
        attachments=tuple(attachments),
    )


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    return info


# -- reading ---------------------------------------------------------------------------------


def is_bundle(path) -> bool:
    """Whether ``path`` should be read as a bundle: a ``.doge`` name, or a zip holding a manifest."""
    p = Path(path)
    if p.suffix.lower() == SUFFIX:
        return True
    try:
        with zipfile.ZipFile(p) as zf:
            return MANIFEST in zf.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def read_bundle(path) -> Bundle:
    """Read and check every part of the bundle at ``path``; raises a DogeError naming the first fault."""
    src = Path(path)
    if not src.is_file():
        raise NotFound(f"{src}: no such file; give the path of a {SUFFIX} bundle")
    where = str(src)
    try:
        with zipfile.ZipFile(src) as zf:
            infos = _checked_members(zf, where)
            manifest = _parse_manifest(_read_member(zf, infos[MANIFEST], where), where)
            entries = _entries(manifest, where)
            _check_member_set(infos, entries, where)
            blobs = {
                sha: _checked_blob(zf, infos[member_name(sha)], sha, where)
                for sha in sorted({e.sha256 for e in entries})
            }
            images = {
                sha: _checked_image(zf, infos[attachment_member(sha)], sha, where)
                for sha in sorted({a["sha256"] for entry in entries for a in entry.attachments})
            }
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
        reason = first_line(e)  # zipfile's own words may quote raw bytes: one short line of them
        reason = reason if len(reason) <= 160 else reason[:160] + "..."
        raise DogeError(f"{where} is damaged or not a doge bundle (a zip file): {reason}") from None
    for entry in entries:
        dim = blobs[entry.sha256][1]
        if dim != entry.dim:
            raise DogeError(
                f"{where}: {entry.ref} says dim {entry.dim} but its blob holds {dim} values; the bundle is damaged"
            )
    return Bundle(
        src, str(manifest.get("created_at", "")), entries, {sha: data for sha, (data, _) in blobs.items()}, images
    )


def _checked_members(zf: zipfile.ZipFile, where: str) -> dict[str, zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise DogeError(f"{where} has {len(infos)} members, more than {MAX_MEMBERS}: not a doge bundle")
    by_name: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        _check_member_name(info, where)
        if info.filename in by_name:
            raise DogeError(f"{where}: member {info.filename!r} appears twice; refusing the bundle")
        if info.file_size > MAX_MEMBER_BYTES:
            raise DogeError(
                f"{where}: member {info.filename!r} is {info.file_size} bytes, over the "
                f"{MAX_MEMBER_BYTES >> 20} MiB limit for one member; refusing the bundle"
            )
        total += info.file_size
        by_name[info.filename] = info
    if total > MAX_TOTAL_BYTES:
        raise DogeError(f"{where} unpacks to {total} bytes, over the {MAX_TOTAL_BYTES >> 30} GiB limit; refusing it")
    if MANIFEST not in by_name:
        raise DogeError(f"{where} is not a doge bundle: it has no {MANIFEST}")
    return by_name


def _check_member_name(info: zipfile.ZipInfo, where: str) -> None:
    name = info.filename
    unsafe = (
        name.startswith(("/", "\\"))
        or "\\" in name
        or "\x00" in name
        or re.match(r"^[A-Za-z]:", name)
        or any(part in ("", ".", "..") for part in name.split("/"))  # also a folder entry, "a/"
    )
    if unsafe:
        raise DogeError(f"{where}: member {name!r} has an unsafe path; refusing the bundle")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise DogeError(f"{where}: member {name!r} is a symbolic link; refusing the bundle")
    if info.flag_bits & 0x1:
        raise DogeError(f"{where}: member {name!r} is encrypted; doge bundles never are")


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    with zf.open(info) as f:
        data = f.read(MAX_MEMBER_BYTES + 1)
    if len(data) != info.file_size:
        raise DogeError(
            f"{where}: member {info.filename!r} holds {len(data)} bytes, not the {info.file_size} it declares"
        )
    return data


def _parse_manifest(data: bytes, where: str) -> dict:
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested too deep
        raise DogeError(f"{where}: {MANIFEST} is not valid JSON; the bundle is damaged") from None
    if not isinstance(manifest, dict):
        raise DogeError(f"{where}: {MANIFEST} is not a JSON object; the bundle is damaged")
    fmt = manifest.get("format")
    if fmt != FORMAT:
        if isinstance(fmt, str) and fmt.startswith("doge-bundle/"):
            raise DogeError(f"{where}: bundle format {fmt!r} is not {FORMAT!r}, the one this doge reads; upgrade doge")
        raise DogeError(f"{where}: unknown bundle format {fmt!r}; doge reads {FORMAT!r}")
    return manifest


def _entries(manifest: dict, where: str) -> tuple[BundleEntry, ...]:
    raw = manifest.get("entries")
    if not isinstance(raw, list) or not raw:
        raise DogeError(f"{where}: {MANIFEST} lists no entries")
    entries = tuple(_entry(e, i, where) for i, e in enumerate(raw))
    refs: set[str] = set()
    alias_owner: dict[tuple[str, str], str] = {}
    for e in entries:
        if e.ref in refs:
            raise DogeError(f"{where}: {e.ref} is listed twice; the bundle is damaged")
        refs.add(e.ref)
        for alias in e.aliases:
            other = alias_owner.setdefault((e.name, alias), e.ref)
            if other != e.ref:
                raise DogeError(f"{where}: alias {e.name}@{alias} points at both {other} and {e.ref}")
    return entries


def _entry(raw, i: int, where: str) -> BundleEntry:
    try:
        return _entry_fields(raw)
    except DogeError as e:
        raise DogeError(f"{where}: entry {i + 1} of {MANIFEST}: {e}") from None


def _entry_fields(raw) -> BundleEntry:
    if not isinstance(raw, dict):
        raise DogeError("not a JSON object")
    name = validate_name(_typed(raw, "name", str))
    version, dim, sha = _typed(raw, "version", int), _typed(raw, "dim", int), _typed(raw, "sha256", str)
    if not (1 <= version <= MAX_VERSION and 1 <= dim <= MAX_VERSION):
        raise DogeError(f"version and dim must be integers from 1 to {MAX_VERSION}")
    if not _SHA_RE.match(sha):
        raise DogeError(f"sha256 {sha!r} is not 64 lowercase hex digits")
    if raw.get("member", member_name(sha)) != member_name(sha):
        raise DogeError(f"member {raw.get('member')!r} is not {member_name(sha)!r}")
    labels = checked_labels(_typed(raw, "labels", dict, {}))
    ref = f"{name}@v{version}"
    records.check("provenance", _typed(raw, "provenance", dict, {}), f"{ref}: provenance")
    records.check_attached(_typed(raw, "evaluations", list, []), _typed(raw, "attachments", list, []), ref)
    return BundleEntry(
        name=name,
        version=version,
        sha256=sha,
        dim=dim,
        description=_typed(raw, "description", str, ""),
        created_at=_typed(raw, "created_at", str, ""),
        created_by=_typed(raw, "created_by", str, ""),
        aliases=tuple(
            validate_alias(a) if isinstance(a, str) else _bad("aliases", a) for a in _typed(raw, "aliases", list, [])
        ),
        labels=labels,
        provenance=_typed(raw, "provenance", dict, {}),
        evaluations=tuple(_object("evaluations", e) for e in _typed(raw, "evaluations", list, [])),
        attachments=tuple(_attachment_fields(a) for a in _typed(raw, "attachments", list, [])),
    )


def _attachment_fields(raw) -> dict:
    if not isinstance(raw, dict):
        raise DogeError("an attachment is not a JSON object")
    kind, sha = _typed(raw, "kind", str), _typed(raw, "sha256", str)
    if kind not in KINDS:
        raise DogeError(f"attachment kind {kind!r} is not one of {', '.join(KINDS)}")
    if not _SHA_RE.match(sha):
        raise DogeError(f"attachment sha256 {sha!r} is not 64 lowercase hex digits")
    if raw.get("member", attachment_member(sha)) != attachment_member(sha):
        raise DogeError(f"member {raw.get('member')!r} is not {attachment_member(sha)!r}")
    evaluation_id = raw.get("evaluation_id")
    if evaluation_id is not None and (not isinstance(evaluation_id, int) or isinstance(evaluation_id, bool)):
        raise DogeError("an attachment's evaluation_id must be an integer or null")
    return {
        "kind": kind,
        "sha256": sha,
        "evaluation_id": evaluation_id,
        "created_at": _typed(raw, "created_at", str, ""),
        "created_by": _typed(raw, "created_by", str, ""),
        "settings": _typed(raw, "settings", dict, {}),
    }


def _typed(raw: dict, key: str, kind: type, default=None):
    if key not in raw and default is not None:
        return default
    value = raw.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DogeError(f"{key!r} must be a {kind.__name__}, got {type(value).__name__}")
    return value


def _object(key: str, value) -> dict:
    if not isinstance(value, dict):
        raise DogeError(f"{key!r} must hold JSON objects, got {type(value).__name__}")
    return value


def _bad(key: str, value):
    raise DogeError(f"{key!r} must hold strings, got {type(value).__name__}")


def _check_member_set(infos: dict, entries: tuple[BundleEntry, ...], where: str) -> None:
    listed = {e.member for e in entries} | {attachment_member(a["sha256"]) for e in entries for a in e.attachments}
    missing = sorted(listed - set(infos))
    if missing:
        raise DogeError(f"{where}: member {missing[0]!r} is listed in {MANIFEST} but missing; the bundle is damaged")
    extra = sorted(set(infos) - listed - {MANIFEST})
    if extra:
        raise DogeError(f"{where}: member {extra[0]!r} is not listed in {MANIFEST}; refusing the bundle")


def _checked_blob(zf: zipfile.ZipFile, info: zipfile.ZipInfo, sha: str, where: str) -> tuple[bytes, int]:
    data = _read_member(zf, info, where)
    actual = sha256_hex(data)
    if actual != sha:
        raise DogeError(
            f"{where}: member {info.filename!r} has sha256 {actual[:12]}…, not the {sha[:12]}… its name and "
            f"{MANIFEST} promise; the bundle was changed or damaged"
        )
    return data, int(gapfile.decode(data, f"{where}: {info.filename}").vector.shape[0])


def _checked_image(zf: zipfile.ZipFile, info: zipfile.ZipInfo, sha: str, where: str) -> bytes:
    data = _read_member(zf, info, where)
    if sha256_hex(data) != sha:
        raise DogeError(
            f"{where}: member {info.filename!r} does not have the sha256 its name and {MANIFEST} promise; "
            "the bundle was changed or damaged"
        )
    return check_png(data, f"{where}: {info.filename}")


# -- importing -------------------------------------------------------------------------------


def import_bundle(registry: Registry, path, *, new_version: bool = False) -> list[Placement]:
    """Check the whole bundle, then store its versions in one transaction (all or nothing).

    Importing a bundle twice changes nothing; its aliases are set, moving an alias of the same
    name that pointed elsewhere.
    """
    try:
        bundle = read_bundle(path)
    except NotFound:
        raise
    except DogeError as e:
        raise DogeError(f"{first_line(e)}; nothing was stored") from None
    when = now_iso()
    items = [_incoming(e, bundle, when) for e in sorted(bundle.entries, key=lambda e: (e.name, e.version))]
    return registry.add_versions(items, new_version=new_version, where="this registry")


def _incoming(e: BundleEntry, bundle: Bundle, when: str) -> IncomingVersion:
    origin = {"bundle": bundle.path.name, "ref": e.ref, "imported_at": when}
    return IncomingVersion(
        name=e.name,
        version=e.version,
        data=bundle.blobs[e.sha256],
        sha256=e.sha256,
        dim=e.dim,
        description=e.description,
        created_at=_parse_time(e.created_at),
        created_by=e.created_by,
        provenance=with_origin(e.provenance, origin),
        source=f"imported from bundle {bundle.path.name}",
        aliases=e.aliases,
        labels=e.labels,
        evaluations=e.evaluations,
        attachments=tuple({**a, "data": bundle.images[a["sha256"]]} for a in e.attachments),
    )


def _parse_time(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(timezone.utc)
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
