"""The rules every copy of a gap version follows (push, pull, bundles), as pure functions.

A copy keeps the blob's bytes, so its sha256 is the same in every registry, and keeps its
version number where that number is free. Versions are immutable: a number that holds another
vector, or was handed out before, is refused unless the caller asks for the next version. A
copy's row provenance gains an ``origin`` (where it came from, which ref, when); the blob's own
metadata is left alone, so the bytes never change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from doge.errors import DogeError

if TYPE_CHECKING:
    from .registry import GapVersion

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
    # evaluation records (with the ``evaluation_id`` they had where they came from) and attached
    # images (``kind``, ``data``, ``sha256``, ``settings``, ``created_at``, ``created_by``,
    # ``evaluation_id``: the id of the evaluation a plot belongs to, among ``evaluations``)
    evaluations: tuple = field(default=(), hash=False)
    attachments: tuple = field(default=(), hash=False)

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"


@dataclass(frozen=True)
class Placement:
    """What became of one incoming version: ``added`` (stored now) or ``present`` (already there)."""

    incoming: IncomingVersion
    stored: GapVersion
    status: str

    def to_json(self) -> dict:
        return {
            "ref": self.incoming.ref,
            "stored_as": self.stored.ref,
            "status": self.status,
            "sha256": self.stored.sha256,
        }


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
