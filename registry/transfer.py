"""Push and pull: copying gap versions between registries, by the rules of :mod:`.copying`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from doge.clock import now_iso
from doge.urls import hide_password

from .copying import IncomingVersion, Placement, with_origin

if TYPE_CHECKING:
    from .readable import ReadableRegistry
    from .registry import GapVersion, Registry


def incoming_from(
    registry: ReadableRegistry, gv: GapVersion, *, origin: dict, source: str, aliases: bool
) -> IncomingVersion:
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
        evaluations=tuple(registry.evaluations(gv)),
        attachments=tuple(attached_from(registry, gv)),
    )


def attached_from(registry: ReadableRegistry, gv: GapVersion) -> list[dict]:
    """``gv``'s previews and plots with their bytes (each checked), as ``IncomingVersion.attachments``."""
    out = []
    for record in registry.attachments(gv):
        _, data = registry.read_attachment(gv, record["id"])
        out.append({**record, "data": data})
    return out


def push(
    local: Registry,
    refs: Iterable,
    remote: Registry,
    remote_name: str,
    *,
    new_version: bool = False,
    aliases: bool = False,
) -> list[Placement]:
    """Copy ``refs`` of ``local`` into ``remote`` (all or nothing)."""
    return _copy(local, refs, remote, "pushed", f"remote {remote_name!r}", new_version=new_version, aliases=aliases)


def pull(
    remote: ReadableRegistry,
    refs: Iterable,
    local: Registry,
    remote_name: str,
    *,
    new_version: bool = False,
    aliases: bool = False,
) -> list[Placement]:
    """Copy ``refs`` of ``remote`` into ``local`` (all or nothing)."""
    return _copy(
        remote,
        refs,
        local,
        "pulled",
        "this registry",
        new_version=new_version,
        aliases=aliases,
        remote_name=remote_name,
    )


def _copy(
    src: ReadableRegistry,
    refs: Iterable,
    dst: Registry,
    verb: str,
    where: str,
    *,
    new_version: bool,
    aliases: bool,
    remote_name: str | None = None,
) -> list[Placement]:
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
