"""Clock and identity: when a change is made, and by whom (the registry stamps every row with these)."""

from __future__ import annotations

import getpass
import os
import socket
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone

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
