"""Remotes: other registries known by a short name, kept in ``DOGE_HOME/remotes.json``.

A remote is a SQLAlchemy URL plus the URL of its blob store. A SQLite remote keeps its blobs in
a ``blobs/`` folder beside its database file unless told otherwise; a server database has no
"beside", so it needs ``--blobs``. A plain folder stands for another doge home
(``registry.db`` + ``blobs/`` inside it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from doge.atomic import write_atomic
from doge.errors import DogeError, NotFound
from doge.home import doge_home
from doge.urls import hide_password

from .http_remote import HttpRegistry, is_http

REMOTES_FILE = "remotes.json"
_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_FILE_VERSION = 1


@dataclass(frozen=True)
class Remote:
    name: str
    url: str  # SQLAlchemy URL, as given (it may hold a password)
    blobs: str  # blob store: a local folder or an fsspec URL

    def to_json(self) -> dict:
        """What a listing shows: passwords hidden."""
        return {"name": self.name, "url": hide_password(self.url), "blobs": hide_password(self.blobs)}


def validate_remote_name(name: str) -> str:
    if not _NAME_RE.match(name or ""):
        raise DogeError(
            f"invalid remote name {name!r}: start with a lowercase letter, then lowercase letters, "
            "digits, '_' or '-' (e.g. 'team')"
        )
    return name


def load_remotes(home=None) -> dict[str, Remote]:
    path = _remotes_path(home)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data["remotes"]
        return {name: Remote(name, e["url"], e["blobs"]) for name, e in sorted(entries.items())}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise DogeError(f"{path} is damaged: fix its JSON or delete it and add the remotes again") from None


def get_remote(name: str, home=None) -> Remote:
    remotes = load_remotes(home)
    if name in remotes:
        return remotes[name]
    known = f"known remotes: {', '.join(remotes)}" if remotes else "there are no remotes yet"
    raise NotFound(f"no remote named {name!r} ({known}); add one with: doge remote add {name} URL")


def add_remote(name: str, url: str, blobs: str | None = None, home=None) -> Remote:
    validate_remote_name(name)
    remotes = load_remotes(home)
    if name in remotes:
        raise DogeError(
            f"remote {name!r} exists (registry {hide_password(remotes[name].url)}); "
            f"remove it first: doge remote remove {name}"
        )
    remote = Remote(name, *normalise_target(url, blobs))
    _save(home, {**remotes, name: remote})
    return remote


def remove_remote(name: str, home=None) -> Remote:
    remote = get_remote(name, home)
    remotes = load_remotes(home)
    del remotes[name]
    _save(home, remotes)
    return remote


def normalise_target(url: str, blobs: str | None) -> tuple[str, str]:
    """The (database URL, blob store URL) a remote is stored with: absolute paths, blobs filled in."""
    if is_http(url):  # a doge serve: read-only, its blobs come through it
        return url.rstrip("/"), url.rstrip("/")
    if "://" not in url:  # a folder: another doge home
        folder = Path(url).expanduser().resolve()
        return f"sqlite:///{folder / 'registry.db'}", _abs_store(blobs) if blobs else str(folder / "blobs")
    try:
        u = make_url(url)
        backend = u.get_backend_name()
        u.get_dialect()  # an unknown database or driver is refused now, not at the first push
    except ImportError as e:
        raise DogeError(f"remote URL {hide_password(url)!r} needs a database driver ({e}); install it") from None
    except Exception:
        raise DogeError(
            f"bad remote URL {hide_password(url)!r}: use a doge home folder, sqlite:///path/registry.db "
            "or postgresql+psycopg://user@host/db"
        ) from None
    if backend == "sqlite":
        if not u.database or u.database == ":memory:" or u.database.startswith("file:"):
            raise DogeError(f"remote URL {hide_password(url)!r} names no database file: use sqlite:///path/registry.db")
        db = Path(u.database).expanduser().resolve()
        return f"sqlite:///{db}", _abs_store(blobs) if blobs else str(db.parent / "blobs")
    if not blobs:
        raise DogeError(
            f"a {backend} remote needs its blob store: add --blobs URL (e.g. s3://bucket/gaps or a "
            "shared folder), the same one its users set as DOGE_BLOB_STORE"
        )
    return url, _abs_store(blobs)


def open_registry(remote: Remote, home=None, *, must_exist: bool = True):
    """The remote's Registry; ``must_exist`` refuses a SQLite remote whose database file is missing
    (a typo would otherwise create an empty registry there)."""
    from .registry import Registry

    if is_http(remote.url):
        return HttpRegistry(remote.url, remote.name)
    u = make_url(remote.url)
    if must_exist and u.get_backend_name() == "sqlite" and not (u.database and Path(u.database).is_file()):
        raise NotFound(
            f"remote {remote.name!r}: no registry at {u.database}; check the path (doge remote list), "
            "or push to it first"
        )
    return Registry(home=home, url=remote.url, blob_store=remote.blobs)


def _abs_store(blobs: str) -> str:
    return blobs if "://" in blobs else str(Path(blobs).expanduser().resolve())


def _remotes_path(home) -> Path:
    return doge_home(home) / REMOTES_FILE


def _save(home, remotes: dict[str, Remote]) -> None:
    data = {
        "version": _FILE_VERSION,
        "remotes": {r.name: {"url": r.url, "blobs": r.blobs} for r in sorted(remotes.values(), key=lambda r: r.name)},
    }
    # private (0600): passwords in URLs stay the owner's
    write_atomic(_remotes_path(home), (json.dumps(data, indent=2) + "\n").encode("utf-8"), private=True)


def split_remote_ref(text: str) -> tuple[str, str]:
    """``team:real->painting@v2`` → ``("team", "real->painting@v2")``."""
    name, sep, ref = text.partition(":")
    if not sep or not ref:
        raise DogeError(f"{text!r}: write REMOTE:REF, e.g. team:'real->painting@v2'")
    return validate_remote_name(name), ref
