"""Blob stores by URL: a local folder (the default), or any fsspec URL (``s3://bucket/gaps``).

An object store writes each object whole or not at all, so a blob is put in one request and its
row is written after; every read is checked against the sha256 its row records, as locally.
S3 credentials and endpoint come from the usual AWS settings (``AWS_ACCESS_KEY_ID``,
``AWS_ENDPOINT_URL`` ...), which s3fs reads through botocore.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from doge.errors import DogeError, first_line

from .blobs import BlobStore, blob_name, checked, missing_blob, sha256_hex
from .gapfile import SUFFIX

ENV = "DOGE_BLOB_STORE"


def open_blob_store(location: str | os.PathLike | None, home: Path):
    """The store at ``location`` (a folder or URL), else $DOGE_BLOB_STORE, else ``home/blobs``."""
    location = location or os.environ.get(ENV) or home / "blobs"
    if isinstance(location, os.PathLike):
        return BlobStore(location)
    if location.startswith("file://"):
        return BlobStore(location[len("file://") :])  # a local folder keeps write-then-rename
    if "://" in location:
        return FsspecBlobStore(location)
    return BlobStore(Path(location).expanduser())


class FsspecBlobStore:
    """``<url>/<sha[:2]>/<sha>.safetensors`` on any fsspec filesystem."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        with self._errors("open"):
            import fsspec

            self._fs, self._root = fsspec.core.url_to_fs(self.url)

    def __repr__(self) -> str:
        return f"FsspecBlobStore({self.url!r})"

    def where(self, sha: str, suffix: str = SUFFIX) -> str:
        return f"{self.url}/{sha[:2]}/{sha}{suffix}"

    def exists(self, sha: str, suffix: str = SUFFIX) -> bool:
        with self._errors("read"):
            return self._fs.exists(self._key(sha, suffix))

    def put(self, data: bytes, suffix: str = SUFFIX) -> str:
        """Store ``data`` (if not there already, intact) and return its sha256."""
        sha = sha256_hex(data)
        with self._errors("write"):
            existing = self._read(sha, suffix)
            if existing is None or sha256_hex(existing) != sha:
                self._fs.pipe_file(self._key(sha, suffix), data)
        return sha

    def get(self, sha: str, what: str, suffix: str = SUFFIX) -> bytes:
        with self._errors("read"):
            data = self._read(sha, suffix)
        if data is None:
            raise missing_blob(what, self.where(sha, suffix))
        return checked(data, sha, what, self.where(sha, suffix))

    def delete(self, sha: str, suffix: str = SUFFIX) -> None:
        with self._errors("delete"), suppress(FileNotFoundError):
            self._fs.rm_file(self._key(sha, suffix))

    def stored(self, suffix: str = SUFFIX):
        """Every blob object of this kind in the store, as (sha256, age in seconds, None where the store gives no time)."""
        pattern = blob_name(suffix)
        with self._errors("list"):
            found = self._fs.find(self._root, detail=True) if self._fs.exists(self._root) else {}
        now = time.time()
        for key, info in found.items():
            m = pattern.match(key.rsplit("/", 1)[-1])
            if m and key.rsplit("/", 2)[-2] == m.group(1)[:2]:
                yield m.group(1), _age(info, now)

    def leftovers(self) -> Iterator[tuple[Path, float]]:
        return iter(())  # an object store writes each object whole: no temp files

    def _key(self, sha: str, suffix: str = SUFFIX) -> str:
        return f"{self._root}/{sha[:2]}/{sha}{suffix}"

    def _read(self, sha: str, suffix: str = SUFFIX) -> bytes | None:
        key = self._key(sha, suffix)
        self._fs.invalidate_cache(key)  # another process may have written it since
        try:
            return self._fs.cat_file(key)
        except FileNotFoundError:
            return None

    @contextmanager
    def _errors(self, doing: str):
        try:
            yield
        except DogeError:
            raise
        except ImportError as e:
            raise DogeError(
                f"blob store {self.url} needs a package fsspec does not have ({first_line(e)}); "
                "for s3:// install doge[s3]"
            ) from None
        except Exception as e:  # network, credentials, missing bucket: the backend's own words
            raise DogeError(
                f"cannot {doing} blob store {self.url}: {type(e).__name__}: {first_line(e)}; "
                f"check the URL (--blobs / {ENV}) and its credentials"
            ) from None


def _age(info: dict, now: float) -> float | None:
    """Seconds since an fsspec entry was written, from whichever time field its backend gives."""
    when: Any = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or info.get("created")
    if hasattr(when, "timestamp"):
        when = when.timestamp()
    try:
        return now - float(when) if when is not None else None
    except (TypeError, ValueError):
        return None
