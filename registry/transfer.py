"""Copying gap versions between registries (push, pull) and the rules every copy follows.

A copy keeps the blob's bytes, so its sha256 is the same in every registry, and keeps its
version number where that number is free. Versions are immutable: a number that holds another
vector, or was handed out before, is refused unless the caller asks for the next version. A
copy's row provenance gains an ``origin`` (where it came from, which ref, when); the blob's own
metadata is left alone, so the bytes never change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterable, Mapping

from doge.errors import DogeError

if TYPE_CHECKING:
    from .registry import GapVersion, Registry

ADDED = "added"
PRESENT = "present"


class VersionConflict(DogeError):
    """A copy would change what an existing name@version means."""


@dataclass(frozen=True)
class IncomingVersion:
    """A gap version made elsewhere, with its blob's bytes, on its way into a registry."""

    name: str
    version: int
    data: bytes  # the blob (a gap safetensors file); its sha256 is the version's
    sha256: str
    dim: int
    description: str
    created_at: datetime
    created_by: str
    provenance: dict = field(hash=False)
    source: str = "copied"  # the row's free-text source, e.g. "pulled from team"
    aliases: tuple[str, ...] = ()  # set (moved) on the stored version
    labels: dict = field(default_factory=dict, hash=False)

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"


@dataclass(frozen=True)
class Placement:
    """What became of one incoming version: ``added`` (stored now) or ``present`` (already there)."""

    incoming: IncomingVersion
    stored: "GapVersion"
    status: str

    def to_json(self) -> dict:
        return {"ref": self.incoming.ref, "stored_as": self.stored.ref, "status": self.status, "sha256": self.stored.sha256}


def place(
    item: IncomingVersion, existing: Mapping[int, str], next_version: int, *, new_version: bool, where: str
) -> tuple[int, bool]:
    """The version ``item`` gets among a name's live versions ``existing`` ({version: sha256}),
    and whether that version already holds it.

    Same vector at the same number (or, failing that, at another number): already there. A free
    number that was never handed out (``>= next_version``): kept. Otherwise the next version when
    ``new_version``, else a VersionConflict.
    """
    if existing.get(item.version) == item.sha256:
        return item.version, True
    same = [v for v, sha in existing.items() if sha == item.sha256]
    if same:
        return max(same), True
    if item.version not in existing and item.version >= next_version:
        return item.version, False
    if new_version:
        return next_version, False
    if item.version in existing:
        why = f"{where} already has {item.ref} with a different vector (sha256 {existing[item.version][:12]})"
    else:
        why = f"{where} has handed out {item.ref} before (numbers are never reused)"
    raise VersionConflict(
        f"versions are immutable: {why}; use --new-version to store it as {item.name}@v{next_version}"
    )


def with_origin(provenance: dict, origin: dict) -> dict:
    """``provenance`` with ``origin`` recorded; an earlier origin is kept under ``origin.previous``."""
    if "origin" in provenance:
        origin = {**origin, "previous": provenance["origin"]}
    return {**provenance, "origin": origin}


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def incoming_from(registry: "Registry", gv: "GapVersion", *, origin: dict, source: str, aliases: bool) -> IncomingVersion:
    """``gv`` of ``registry`` as an incoming version for another registry (its blob read and checked)."""
    return IncomingVersion(
        name=gv.name,
        version=gv.version,
        data=registry.read_blob(gv),
        sha256=gv.sha256,
        dim=gv.dim,
        description=gv.description,
        created_at=gv.created_at,
        created_by=gv.created_by,
        provenance=with_origin(gv.provenance, origin),
        source=source,
        aliases=gv.aliases if aliases else (),
        labels=dict(gv.labels),
    )


def push(local: "Registry", refs: Iterable, remote: "Registry", remote_name: str, *,
         new_version: bool = False, aliases: bool = False) -> list[Placement]:
    """Copy ``refs`` of ``local`` into ``remote`` (all or nothing)."""
    return _copy(local, refs, remote, "pushed", f"remote {remote_name!r}", new_version=new_version, aliases=aliases)


def pull(remote: "Registry", refs: Iterable, local: "Registry", remote_name: str, *,
         new_version: bool = False, aliases: bool = False) -> list[Placement]:
    """Copy ``refs`` of ``remote`` into ``local`` (all or nothing)."""
    return _copy(remote, refs, local, "pulled", "this registry", new_version=new_version, aliases=aliases,
                 remote_name=remote_name)


def _copy(src: "Registry", refs: Iterable, dst: "Registry", verb: str, where: str, *, new_version: bool,
          aliases: bool, remote_name: str | None = None) -> list[Placement]:
    from .remotes import hide_password

    versions = sorted({gv.ref: gv for gv in map(src.resolve, refs)}.values(), key=lambda gv: (gv.name, gv.version))
    when = now_iso()
    items = []
    for gv in versions:
        origin = {"registry": hide_password(src.url), "ref": gv.ref, f"{verb}_at": when}
        if remote_name:
            origin["remote"] = remote_name
        source = f"{verb} from {remote_name}" if remote_name else f"{verb} from {hide_password(src.url)}"
        items.append(incoming_from(src, gv, origin=origin, source=source, aliases=aliases))
    return dst.add_versions(items, new_version=new_version, where=where)
