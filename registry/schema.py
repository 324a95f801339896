"""The registry's schema revision (Alembic): check it on open, create it new, upgrade it.

A new registry is created from the models and stamped at the head revision. A registry at an
older revision is refused (nothing is written) until ``doge registry upgrade`` migrates it; tables
made before doge used Alembic (no ``alembic_version``) count as the first revision.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, inspect, select, text

from doge.errors import DogeError
from doge.urls import hide_password

from .database import advisory_lock
from .models import Base

if TYPE_CHECKING:  # Alembic is imported only to create or upgrade a registry
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).with_name("migrations")
FIRST = "0001_initial"  # what doge 0.1 made, before it recorded a revision
# The newest revision in migrations/versions. Kept here so that opening a registry need not
# import Alembic (a tenth of a second on every command); a test checks it against Alembic's head.
HEAD = "0004_attachments"
VERSION_TABLE = "alembic_version"
_SCHEMA_LOCK = 0x646F6765  # PostgreSQL advisory lock key for creating or upgrading ("doge")


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    return HEAD


def known_revisions() -> list[str]:
    """Every revision this doge knows, oldest first."""
    return [s.revision for s in reversed(list(_scripts().walk_revisions()))]


def current_revision(conn) -> str | None:
    """The database's revision: None when it holds no registry yet; reads only."""
    tables = set(inspect(conn).get_table_names())
    if VERSION_TABLE in tables:
        revisions = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        if len(revisions) == 1:
            return revisions[0]
        if revisions:
            raise DogeError(f"the registry holds several schema revisions ({', '.join(revisions)}); repair it by hand")
    if "gap_versions" in tables:
        return FIRST
    return None


def check(engine, write_engine, url: str) -> None:
    """Make sure the registry is at the head revision: create it if empty, refuse it if not."""
    with engine.connect() as conn:
        revision = current_revision(conn)
    if revision == head_revision():
        return
    if revision is not None:
        raise _mismatch(revision, url)
    with write_engine.begin() as conn:
        advisory_lock(conn, _SCHEMA_LOCK)
        revision = current_revision(conn)  # again, now that no one else creates it
        if revision is None:
            _create(conn)
        elif revision != head_revision():
            raise _mismatch(revision, url)


def upgrade(write_engine, url: str) -> tuple[str | None, str]:
    """Migrate the registry to the head revision in one transaction; (before, after)."""
    from alembic import command

    head = head_revision()
    with write_engine.begin() as conn:
        advisory_lock(conn, _SCHEMA_LOCK)
        before = current_revision(conn)
        if before is None:
            _create(conn)
        elif before != head:
            if before not in known_revisions():
                raise _mismatch(before, url)
            cfg = alembic_config(conn)
            if not inspect(conn).has_table(VERSION_TABLE):
                command.stamp(cfg, FIRST)  # made before doge recorded revisions
            command.upgrade(cfg, "head")
    return before, head


def counts(conn) -> dict[str, int]:
    """Rows in each registry table that exists (an old schema lacks the newer ones)."""
    tables = set(inspect(conn).get_table_names())
    return {
        name: conn.execute(select(func.count()).select_from(table)).scalar_one()
        for name, table in Base.metadata.tables.items()
        if name in tables
    }


def _create(conn) -> None:
    from alembic import command

    Base.metadata.create_all(conn)
    command.stamp(alembic_config(conn), "head")


def _mismatch(revision: str, url: str) -> DogeError:
    head = head_revision()
    where = hide_password(url)
    if revision in known_revisions():
        return DogeError(
            f"the registry at {where} has schema revision {revision}, from an older doge (this one needs "
            f"{head}); nothing was changed: run 'doge registry upgrade' (back up the database first)"
        )
    return DogeError(
        f"the registry at {where} has schema revision {revision}, which this doge does not know: a newer "
        "doge made it; upgrade doge (pip install -U doge)"
    )
