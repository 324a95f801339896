"""The registry's SQL engine: making it from a URL, and turning database errors into one line."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from doge.atomic import make_dirs
from doge.errors import DogeError, first_line
from doge.urls import hide_password

SQLITE_BUSY_TIMEOUT_S = 30
WRITE = "doge_write"  # execution option that marks a write transaction
_PG_READ_ONLY_STATES = {"42501", "25006"}  # insufficient_privilege, read_only_sql_transaction


class ReadOnlyRegistry(DogeError):
    """A write to a registry this user may only read."""


class RegistryBusy(DogeError):
    """Another writer holds the registry's lock past the busy timeout: try again shortly."""


def make_engine(url: str, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S):
    try:
        u = make_url(url)
        if u.get_backend_name() != "sqlite":
            return create_engine(u, pool_pre_ping=True)
        if u.database and u.database != ":memory:" and not u.database.startswith("file:"):
            make_dirs(Path(u.database).expanduser().parent)
        engine = create_engine(u, connect_args={"timeout": busy_timeout_s})
    except (ArgumentError, ValueError):
        raise DogeError(
            f"bad registry URL {hide_password(url)!r}: use e.g. sqlite:///path/registry.db "
            "or postgresql+psycopg://user@host/db"
        ) from None
    except (NoSuchModuleError, ImportError) as e:
        raise DogeError(
            f"registry URL {hide_password(url)!r} needs a database driver ({e}); "
            "install it, e.g. pip install 'doge[postgres]'"
        ) from None
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_conn, _record) -> None:
    dbapi_conn.isolation_level = None  # let the "begin" hook below emit BEGIN itself
    dbapi_conn.execute("PRAGMA foreign_keys=ON")


def _sqlite_begin(conn) -> None:
    # A writer takes the write lock up front (waiting up to the busy timeout), so concurrent
    # writers queue instead of failing when a deferred read lock cannot be upgraded. DDL runs
    # inside this transaction too, so a schema upgrade lands whole or not at all.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")


def advisory_lock(conn, key: int) -> None:
    """Serialise PostgreSQL transactions on ``key`` (SQLite writers already hold the write lock)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


@contextmanager
def db_errors(url: str, opening: bool = False):
    """Turn a database error into one line: read-only, unreachable, or the server's own words."""
    try:
        yield
    except DBAPIError as e:
        if is_read_only(e):
            raise ReadOnlyRegistry(
                f"the registry at {hide_password(url)} is read-only for this user: ask its owner for write "
                "access, or point --registry (DOGE_REGISTRY_URL) at a registry you can write to"
            ) from None
        if is_busy(e):
            raise RegistryBusy(
                f"the registry at {hide_password(url)} is busy: another writer holds its lock; try again in a moment"
            ) from None
        if is_dropped_connection(e):
            doing = "cannot open the registry" if opening else "registry"
            raise DogeError(
                f"{doing} {hide_password(url)}: the database server closed the connection ({first_line(e.orig or e)}); "
                "a server restarting or a killed connection does this: run the command again"
            ) from None
        if opening:
            raise DogeError(
                f"cannot open the registry {hide_password(url)}: {first_line(e.orig or e)}; "
                "check the registry URL (--registry / DOGE_REGISTRY_URL)"
            ) from None
        raise DogeError(f"registry {hide_password(url)}: {first_line(e.orig or e)}") from e


# What PostgreSQL drivers say when an open connection goes away (a killed backend, a restart).
_DROPPED_STATES = {"57P01", "57P02", "57P03"}  # admin_shutdown, crash_shutdown, cannot_connect_now
_DROPPED_WORDS = (
    "server closed the connection",
    "terminating connection",
    "connection is closed",
    "connection was closed",
    "consuming input failed",
    "connection to server was lost",
    "ssl syscall error: eof",
)


def is_dropped_connection(e: DBAPIError) -> bool:
    """The server was reached and then closed the connection: retrying is the fix, not the URL."""
    if e.connection_invalidated or getattr(e.orig, "sqlstate", None) in _DROPPED_STATES:
        return True
    text = str(e.orig).lower()
    return any(words in text for words in _DROPPED_WORDS)


def is_busy(e: DBAPIError) -> bool:
    """SQLite's lock held by another connection past the busy timeout, or PostgreSQL's lock_not_available."""
    orig = e.orig
    if getattr(orig, "sqlstate", None) == "55P03":
        return True
    name = str(getattr(orig, "sqlite_errorname", ""))
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in str(orig).lower()


def is_read_only(e: DBAPIError) -> bool:
    orig = e.orig
    if getattr(orig, "sqlstate", None) in _PG_READ_ONLY_STATES:
        return True
    return str(getattr(orig, "sqlite_errorname", "")).startswith("SQLITE_READONLY")
