"""Content-addressed blob store: ``<root>/<sha[:2]>/<sha>.safetensors``, written atomically."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from doge.atomic import write_atomic
from doge.errors import IntegrityError

from .gapfile import SUFFIX


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, sha: str) -> Path:
        return self.root / sha[:2] / f"{sha}{SUFFIX}"

    def exists(self, sha: str) -> bool:
        return self.path(sha).is_file()

    def put(self, data: bytes) -> str:
        """Store ``data`` (if not there already, intact) and return its sha256."""
        sha = sha256_hex(data)
        path = self.path(sha)
        if not (path.is_file() and sha256_hex(path.read_bytes()) == sha):
            write_atomic(path, data)
        return sha

    def get(self, sha: str, what: str) -> bytes:
        """The bytes of blob ``sha``, checked; ``what`` names the owner (a ref) in errors."""
        path = self.path(sha)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise IntegrityError(
                f"{what}: blob file {path} is missing; restore it, or remove the version "
                "and import it again"
            ) from None
        actual = sha256_hex(data)
        if actual != sha:
            raise IntegrityError(
                f"{what}: blob file {path} is corrupted (sha256 {actual}, expected {sha}); "
                "restore it, or remove the version and import it again"
            )
        return data

    def delete(self, sha: str) -> None:
        self.path(sha).unlink(missing_ok=True)
