"""Where data lives: a local folder, or any fsspec URL (``s3://``, ``gs://``, ``az://``, ``hf://``, ...).

Every folder doge takes (``--src``, ``--tgt``, ``--out``, ``--annotations``, ``--masks``) goes
through :func:`location`: a local path becomes a :class:`pathlib.Path` (``file://`` URLs too, so
local folders keep write-then-rename and locks), a URL a :class:`upath.UPath` on the fsspec
filesystem its scheme names. The rest of doge reads and writes both the same way
(``/``, ``exists``, ``read_bytes``, :func:`put`), so this module is the one place that knows
object stores exist:

- Credentials come from where the backend already looks (``AWS_*`` variables and profiles for
  s3fs, ``GOOGLE_APPLICATION_CREDENTIALS`` for gcsfs, ``HF_TOKEN`` for ``hf://`` ...); doge never
  prints or records them: what it shows and records of a URL passes :func:`shown`.
- Reads stream object by object; nothing makes a local copy of a source set.
- An object store has no rename: :func:`put` writes each object once, whole, under its final
  key, and callers write their commit point (a manifest, a ``metadata.jsonl``) after the objects
  it lists.
- A failure is one :class:`~doge.errors.DogeError` line naming the password-free URL and what to
  set (:func:`errors`).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from doge.errors import DogeError, NotFound, first_line
from doge.paths import inside, relative_key
from doge.urls import hide_password

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

# What to set, per scheme, when an object store refuses us (the backend's own settings).
CREDENTIALS = {
    "s3": "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (and AWS_ENDPOINT_URL for a store other than AWS)",
    "gs": "GOOGLE_APPLICATION_CREDENTIALS (or run gcloud auth application-default login)",
    "az": "AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY",
    "hf": "HF_TOKEN (or run hf auth login)",
}
CREDENTIALS["s3a"] = CREDENTIALS["s3"]
CREDENTIALS["gcs"] = CREDENTIALS["gs"]
CREDENTIALS["abfs"] = CREDENTIALS["abfss"] = CREDENTIALS["adl"] = CREDENTIALS["az"]

PACKAGES = {"s3": "s3fs (pip install 'doge[s3]')", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}


def is_url(where: Any) -> bool:
    """True for ``scheme://...`` text (any scheme, ``file://`` included)."""
    return isinstance(where, str) and bool(_SCHEME.match(where))


def location(where: Any):
    """``where`` (a path, ``file://`` URL or fsspec URL) as a Path (local) or a UPath (remote)."""
    from upath import UPath

    if where is None:  # str(None) would be a folder named "None" in the working directory
        raise DogeError("a folder or URL is needed here, got None")

    if isinstance(where, UPath):
        return Path(where.path) if where.protocol in ("", "file", "local") else where
    if isinstance(where, os.PathLike):
        return Path(where)
    text = str(where)
    if text.startswith("file://"):
        return Path(unquote(urlsplit(text).path))
    if is_url(text):
        with errors(text, "open"):
            return UPath(text)
    return Path(text).expanduser()


def output_location(where: Any, flag: str = "--out"):
    """The folder a job writes to, as :func:`location`; nothing (None, "") is refused in one line
    rather than taken as the working directory."""
    if where is None or not str(where).strip():
        raise DogeError(f"give {flag}: the folder (or URL) to write to")
    return location(where)


def is_remote(path: Any) -> bool:
    """True for a location on an object store (or any non-local fsspec filesystem)."""
    if is_url(path):
        return not str(path).startswith("file://")
    return hasattr(path, "protocol") and getattr(path, "protocol", "") not in ("", "file", "local")


def protocol(path: Any) -> str:
    if is_url(path):
        return str(path).split("://", 1)[0].lower()
    return str(getattr(path, "protocol", "") or "file")


def shown(path: Any) -> str:
    """``path`` as a person (and provenance, manifests, cards) may see it: no password, no token."""
    return hide_password(str(path))


def filesystem(path: Any):
    """The fsspec filesystem of a remote location, made in this process: fsspec keeps one per process
    and set of options, so a DataLoader worker forked from a process that used S3 gets its own (an
    s3fs instance is not fork-safe) where ``path.fs``, made in the parent, would fail."""
    import fsspec

    return fsspec.filesystem(path.protocol, **path.storage_options)


def key_of(path: Any) -> str:
    """The fsspec key (bucket/prefix/...) of a remote location."""
    return str(path.path).rstrip("/")


# -- reading ----------------------------------------------------------------------------------


def read_bytes(path: Any) -> bytes:
    path = location(path)
    if not is_remote(path):
        return path.read_bytes()
    with errors(path, "read"):
        return filesystem(path).cat_file(key_of(path))


def open_read(path: Any):
    """A binary file object reading ``path`` (streamed in blocks from an object store)."""
    path = location(path)
    if not is_remote(path):
        return open(path, "rb")
    with errors(path, "read"):
        return filesystem(path).open(key_of(path), "rb")


def read_text_if_exists(path: Any) -> str | None:
    """The object's text (UTF-8), or None if there is none; reads past any cached listing."""
    path = location(path)
    if not is_remote(path):
        return path.read_text(encoding="utf-8") if path.exists() else None
    with errors(path, "read"):
        filesystem(path).invalidate_cache(key_of(path))
        try:
            return filesystem(path).cat_file(key_of(path)).decode("utf-8")
        except FileNotFoundError:
            return None


def is_folder(where: Any) -> bool:
    """True for a folder (a prefix with objects below it); False also where the backend will not say."""
    try:
        return bool(location(where).is_dir())
    except Exception:  # no credentials, no network: the caller reports the folder as not there
        return False


def is_file(where: Any) -> bool:
    """True for a file (an object); False also where the backend will not say."""
    try:
        return bool(location(where).is_file())
    except Exception:  # as in is_folder
        return False


def list_files(root: Any) -> list[str]:
    """Every object below a remote folder, as keys relative to it (posix, sorted), in one listing.

    A key that would leave the folder (``..``, an empty part) is refused naming it: object stores
    allow such names, and joined to the folder they would point elsewhere."""
    root = location(root)
    base = key_of(root)
    with errors(root, "list"):
        filesystem(root).invalidate_cache(base)
        found = filesystem(root).find(base, detail=False)
        if not found and not filesystem(root).isdir(base):
            raise NotFound(f"{shown(root)}: no such folder (no objects below it)")
    rels = []
    for key in found:
        key = str(key)
        rel = key[len(base) + 1 :] if key.startswith(base + "/") else ""
        if rel:
            if relative_key(rel, f"{shown(root)}: object") != rel:  # a/./b, a//b: another key than it reads
                raise DogeError(f"{shown(root)}: object {rel!r} has an empty or '.' part in its key: rename it")
            rels.append(rel)
    return sorted(rels)


def child(root: Any, rel: Any, where: str) -> Any:
    """``root / rel`` for a name read from a user's file, an output read back, or an object listing,
    once it passes the one containment rule (:mod:`doge.paths`): a clean relative key, and for a
    local root, a path that lies inside it with every symlink followed. ``where`` names the entry
    in the one-line refusal."""
    if is_remote(root):
        return root / relative_key(rel, where)
    return inside(root, rel, where)


def contains(root: Any, rel: Any) -> bool:
    """Whether :func:`child` would accept ``rel`` under ``root`` (for a clean-up that skips the rest)."""
    try:
        child(root, rel, "")
    except DogeError:
        return False
    return True


def relative(path: Any, root: Any) -> str:
    """``path`` below ``root`` as posix text (the path itself when it is not below)."""
    if is_remote(path) or is_remote(root):
        if not (is_remote(path) and is_remote(root)):
            return shown(path)
        full, base = key_of(path), key_of(location(root))
        return full[len(base) + 1 :] if full.startswith(base + "/") else shown(path)
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).as_posix()


def same_or_below(inner: Any, outer: Any) -> bool:
    """True when the folder ``inner`` is ``outer`` or lies below it (local paths resolved, URLs
    compared by key): for two folders a user named (``--out`` inside ``--src``). A name read from a
    user's file goes through :func:`child` / :func:`contains` instead."""
    inner, outer = location(inner), location(outer)
    if is_remote(inner) != is_remote(outer):
        return False
    if is_remote(inner):
        if protocol(inner) != protocol(outer):
            return False
        key, prefix = key_of(inner), key_of(outer)
        return key == prefix or key.startswith(prefix + "/")
    a, b = Path(inner).resolve(), Path(outer).resolve()
    return a == b or b in a.parents


# -- writing ----------------------------------------------------------------------------------


def put(path: Any, data: bytes) -> None:
    """Write ``data`` to a remote ``path`` in one request: the object appears whole or not at all."""
    with errors(path, "write"):
        filesystem(path).pipe_file(key_of(path), data)


def remove(path: Any) -> None:
    with errors(path, "delete"), suppress(FileNotFoundError):
        filesystem(path).rm_file(key_of(path))


def check_writable(folder: Any) -> None:
    """Fail now, with one line, when ``folder`` (remote) cannot be written: put and remove a probe."""
    probe = key_of(folder) + f"/.doge-write-test-{uuid.uuid4().hex[:8]}"
    with errors(folder, "write to"):
        fs = filesystem(folder)
        fs.pipe_file(probe, b"")
        with suppress(FileNotFoundError):
            fs.rm_file(probe)


# -- errors -----------------------------------------------------------------------------------


@contextmanager
def errors(path: Any, doing: str) -> Iterator[None]:
    """Turn what a filesystem backend raises into one line naming the URL (password-free) and the fix."""
    try:
        yield
    except DogeError:
        raise
    except ImportError as exc:
        scheme = protocol(path)
        package = PACKAGES.get(scheme, f"the fsspec backend for {scheme}://")
        raise DogeError(f"cannot {doing} {shown(path)}: it needs {package} ({first_line(exc)})") from None
    except ValueError as exc:
        if "protocol" in str(exc).lower():
            raise DogeError(
                f"cannot {doing} {shown(path)}: fsspec knows no filesystem for {protocol(path)}:// ({first_line(exc)})"
            ) from None
        raise _failure(path, doing, exc) from None
    except FileNotFoundError:
        raise NotFound(f"cannot {doing} {shown(path)}: no such file, folder or bucket") from None
    except Exception as exc:  # credentials, permissions, network: the backend's own words, and what to set
        raise _failure(path, doing, exc) from None


def _failure(path: Any, doing: str, exc: BaseException) -> DogeError:
    scheme = protocol(path)
    hint = CREDENTIALS.get(scheme)
    fix = f"check the URL and its credentials ({hint})" if hint else "check the URL and its credentials"
    return DogeError(f"cannot {doing} {shown(path)}: {type(exc).__name__}: {hide_password(first_line(exc))}; {fix}")
