"""Content-addressed blob store in a local folder: ``<root>/<sha[:2]>/<sha>.safetensors``, written
atomically. ``blobstores.open_blob_store`` picks it or an fsspec store (S3 ...) with the same methods."""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

from doge.atomic import write_atomic
from doge.errors import DogeError, IntegrityError

from .gapfile import SUFFIX


def blob_name(suffix: str = SUFFIX) -> re.Pattern[str]:
    """How a blob file of this kind (``.safetensors`` vectors, ``.png`` attachments) is named."""
    return re.compile(rf"^([0-9a-f]{{64}}){re.escape(suffix)}$")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def missing_blob(what: str, where: str) -> IntegrityError:
    return IntegrityError(
        f"{what}: blob file {where} is missing; restore it, or remove the version and import it again"
    )


def checked(data: bytes, sha: str, what: str, where: str) -> bytes:
    """``data`` if its sha256 is ``sha``, else an IntegrityError naming both digests."""
    actual = sha256_hex(data)
    if actual != sha:
        raise IntegrityError(
            f"{what}: blob file {where} is corrupted (sha256 {actual}, expected {sha}); "
            "restore it, or remove the version and import it again"
        )
    return data


class BlobStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @property
    def url(self) -> str:
        return str(self.root)

    def path(self, sha: str, suffix: str = SUFFIX) -> Path:
        return self.root / sha[:2] / f"{sha}{suffix}"

    def where(self, sha: str, suffix: str = SUFFIX) -> str:
        """Where blob ``sha`` lives, for messages."""
        return str(self.path(sha, suffix))

    def exists(self, sha: str, suffix: str = SUFFIX) -> bool:
        return self.path(sha, suffix).is_file()

    def put(self, data: bytes, suffix: str = SUFFIX) -> str:
        """Store ``data`` (if not there already, intact) and return its sha256. ``suffix``: the
        file type (gap vectors are ``.safetensors``, previews and plots ``.png``)."""
        sha = sha256_hex(data)
        path = self.path(sha, suffix)
        if not (path.is_file() and sha256_hex(path.read_bytes()) == sha):
            write_atomic(path, data)
        return sha

    def get(self, sha: str, what: str, suffix: str = SUFFIX) -> bytes:
        """The bytes of blob ``sha``, checked; ``what`` names the owner (a ref) in errors."""
        try:
            data = self.path(sha, suffix).read_bytes()
        except FileNotFoundError:
            raise missing_blob(what, self.where(sha, suffix)) from None
        except OSError as exc:  # a folder in its place, no permission, an I/O error
            raise DogeError(
                f"{what}: blob file {self.where(sha, suffix)} cannot be read ({exc.strerror or exc}); "
                "restore it, or remove the version and import it again"
            ) from None
        return checked(data, sha, what, self.where(sha, suffix))

    def delete(self, sha: str, suffix: str = SUFFIX) -> None:
        self.path(sha, suffix).unlink(missing_ok=True)

    def stored(self, suffix: str = SUFFIX) -> Iterator[tuple[str, float | None]]:
        """Every blob file of this kind in the store, as (sha256, age in seconds)."""
        pattern = blob_name(suffix)
        if not self.root.is_dir():
            return
        now = time.time()
        for path in self.root.glob(f"??/*{suffix}"):
            m = pattern.match(path.name)
            if m and path.parent.name == m.group(1)[:2]:
                try:
                    yield m.group(1), now - path.stat().st_mtime
                except FileNotFoundError:  # removed meanwhile
                    continue

    def leftovers(self) -> Iterator[tuple[Path, float]]:
        """Temp files that interrupted writes left (``.<blob>.*.part``), with their age in seconds."""
        if not self.root.is_dir():
            return
        now = time.time()
        for path in self.root.glob("??/.*.part"):
            try:
                yield path, now - path.stat().st_mtime
            except FileNotFoundError:
                continue
