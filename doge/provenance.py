"""The provenance recorded with every gap version."""

from __future__ import annotations

import getpass
import os
import socket
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import doge

if TYPE_CHECKING:  # the registry imports who(); it must not import torch
    from doge.data.embeddings import Embeddings


_acting_as: ContextVar[str | None] = ContextVar("doge_acting_as", default=None)


@contextmanager
def acting_as(user: str):
    """Record ``user`` as who makes the changes inside the block (doge serve: the token's user)."""
    token = _acting_as.set(user)
    try:
        yield
    finally:
        _acting_as.reset(token)


def who() -> str:
    if _acting_as.get() is not None:
        return str(_acting_as.get())
    try:
        user = getpass.getuser()
    except Exception:  # no login name in some containers
        user = os.environ.get("USER", "unknown")
    return f"{user}@{socket.gethostname()}"


def now_iso() -> str:
    return iso_utc(datetime.now(timezone.utc))


def iso_utc(dt: datetime) -> str:
    """``2024-05-01T12:00:00Z``: the one timestamp format; a naive ``dt`` (SQLite's) is taken as UTC."""
    dt = dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)
    return dt.isoformat(timespec="seconds").replace("+00:00", "Z")


def side(emb: Embeddings, limit: int | None) -> dict:
    return {
        "folder": emb.folder,
        "images": len(emb),
        "skipped": emb.skipped,
        "classes": [c for c in emb.classes if c],
        "limit": limit,
        "digest": emb.digest,
    }


def gap_provenance(
    *,
    encoder: dict,
    estimator: str,
    params: dict,
    src: Embeddings,
    tgt: Embeddings,
    src_limit: int | None,
    tgt_limit: int | None,
    seed: int,
    description: str,
) -> dict:
    return {
        "encoder": encoder,
        "estimator": {"name": estimator, "params": params},
        "source": side(src, src_limit),
        "target": side(tgt, tgt_limit),
        "seed": seed,
        "created_at": now_iso(),
        "created_by": who(),
        "doge_version": doge.__version__,
        "description": description,
    }
