"""A read-only remote over HTTP: the JSON API and downloads of a ``doge serve``.

``doge remote add team http://gaps.lab:8000`` then ``doge gap list --remote team`` and
``doge gap pull team:'real->painting@prod'`` read through it; every blob is checked against the
sha256 the server lists, as a local read is. Writes (push) are refused: push to the registry's
database instead. Only the standard library is used.
"""

from __future__ import annotations

import builtins
import json
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from doge.errors import DogeError, NotFound, first_line
from doge.urls import hide_password

from . import records
from .blobs import checked
from .labels import checked_labels

if TYPE_CHECKING:  # the registry module (SQLAlchemy) is imported on first use
    from doge.names import Ref

    from .registry import GapVersion

TIMEOUT_S = 60


def is_http(url: str) -> bool:
    return url.startswith(("http://", "https://"))


class HttpRegistry:
    """The part of :class:`doge.registry.Registry` that reading and pulling use, over HTTP."""

    def __init__(self, url: str, name: str = "remote"):
        self.url = url.rstrip("/")
        self.name = name

    def __repr__(self) -> str:
        return f"HttpRegistry({hide_password(self.url)!r})"

    def close(self) -> None:
        pass

    # -- reading -------------------------------------------------------------------------

    def list(self, name: str | None = None, where: dict | None = None, search: str | None = None) -> builtins.list[Any]:
        query = [("where", f"{k}={v}") for k, v in checked_labels(where or {}).items()]
        if name:
            query.append(("name", name))
        if search:
            query.append(("search", search))
        found = self._json("/api/gaps", query)
        if not isinstance(found, builtins.list):
            raise DogeError(
                f"{self.name} ({hide_password(self.url)}) did not answer a list of gaps: is it a doge serve?"
            )
        return [self._gv(d) for d in found]

    def list_rows(self, name=None, where=None, search=None, limit: int | None = None) -> tuple[builtins.list, int]:
        """``Registry.list_rows``' answer (rows, how many match) from the server's listing."""
        found = [_Row(gv) for gv in self.list(name, where=where, search=search)]
        return (found[:limit] if limit else found), len(found)

    def resolve(self, ref: str | Ref | GapVersion) -> GapVersion:
        return self._gv(self._json(f"/api/gaps/{_seg(ref)}"))

    def evaluations(self, ref) -> builtins.list[dict]:
        shown = self._json(f"/api/gaps/{_seg(ref)}")
        gv = self._gv(shown)
        found = shown.get("evaluations", [])
        records.check_attached(found, (), f"{self.name}: {gv.ref}")
        return builtins.list(found)

    def attachments(self, ref, kind: str | None = None) -> builtins.list[dict]:
        found = self._json(f"/api/gaps/{_seg(ref)}/attachments")
        if not isinstance(found, builtins.list):
            raise DogeError(f"{self.name}: the attachments of {ref} are not a list: is it a doge serve?")
        records.check_attached((), found, f"{self.name}: {getattr(ref, 'ref', ref)}")
        return [a for a in found if kind is None or a["kind"] == kind]

    def previews(self, ref) -> builtins.list[dict]:
        return self.attachments(ref, "preview")

    def read_blob(self, gv) -> bytes:
        data = self._get(f"/api/gaps/{_seg(gv)}/safetensors")
        return checked(data, gv.sha256, f"gap {gv.ref}", f"{hide_password(self.url)} ({self.name})")

    def read_attachment(self, ref, attachment_id: int) -> tuple[dict, bytes]:
        record = next((a for a in self.attachments(ref) if a["id"] == attachment_id), None)
        if record is None:
            raise NotFound(f"{self.name}: gap {ref} has no preview or plot {attachment_id}")
        data = self._get(f"/api/gaps/{_seg(ref)}/attachments/{attachment_id}")
        return record, checked(data, record["sha256"], f"{record['kind']} {attachment_id} of {record['ref']}", self.url)

    # -- writing -------------------------------------------------------------------------

    def add_versions(self, items, new_version: bool = False, where: str = "") -> builtins.list:
        raise DogeError(
            f"remote {self.name!r} is a doge serve over HTTP, which only reads: pull from it; to push, "
            "add its database (and blob store) as a remote instead"
        )

    # -- internals -----------------------------------------------------------------------

    def _get(self, path: str, query=()) -> bytes:
        url = self.url + path + (f"?{urllib.parse.urlencode(list(query))}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                return response.read()
        except urllib.error.HTTPError as e:
            message = _error_of(e)
            if e.code == 404:
                raise NotFound(f"{self.name}: {message}") from None
            raise DogeError(f"{self.name} ({hide_password(self.url)}) answered {e.code}: {message}") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise DogeError(
                f"cannot reach remote {self.name!r} at {hide_password(self.url)}: {first_line(reason) if isinstance(reason, BaseException) else reason}; "
                "is doge serve running there?"
            ) from None

    def _gv(self, d: Any) -> GapVersion:
        """A listed version as a GapVersion, once it passes the version schema."""
        what = d.get("ref") if isinstance(d, dict) and isinstance(d.get("ref"), str) else "a version"
        where = f"{self.name} ({hide_password(self.url)}): {what}"
        records.check("version", d, where)
        if "created_at" not in d:
            raise DogeError(f"{where}: field 'created_at' is missing")
        return _gv(d)

    def _json(self, path: str, query=()):
        data = self._get(path, query)
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            raise DogeError(
                f"{self.name} ({hide_password(self.url)}{path}) did not answer JSON: is it a doge serve?"
            ) from None


def _seg(ref) -> str:
    return urllib.parse.quote(getattr(ref, "ref", None) or str(ref), safe="@")


def _error_of(e: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(e.read())["error"])
    except Exception:  # not doge's JSON error: the status line says enough
        return str(e.reason)


def _gv(d: dict):
    from .registry import GapVersion

    created = datetime.fromisoformat(d["created_at"].replace("Z", "+00:00"))
    return GapVersion(
        name=d["name"],
        version=int(d["version"]),
        sha256=d["sha256"],
        dim=int(d["dim"]),
        description=d.get("description", ""),
        created_at=created if created.tzinfo else created.replace(tzinfo=timezone.utc),
        created_by=d.get("created_by", ""),
        aliases=tuple(d.get("aliases", ())),
        provenance=d.get("provenance", {}),
        labels=d.get("labels", {}),
    )


class _Row:
    """A listed version in the shape of ``registry.VersionRow`` (what ``doge gap list`` prints)."""

    def __init__(self, gv: GapVersion) -> None:
        self.gv = gv

    def version_object(self) -> GapVersion:
        return self.gv

    def to_json_text(self) -> str:
        return json.dumps(self.gv.to_json(), sort_keys=True)
