"""The gap registry: named, versioned gaps; rows in SQL, vectors in a content-addressed blob store."""

from __future__ import annotations

import difflib
import getpass
import os
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, delete, event, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session

from doge.errors import DogeError, IntegrityError, NotFound
from doge.home import doge_home
from doge.names import Ref, parse_ref, validate_alias, validate_name

from . import gapfile
from doge.atomic import write_atomic

from .blobs import BlobStore, sha256_hex
from .models import AliasRow, Base, GapName, GapRow

SQLITE_BUSY_TIMEOUT_S = 30
MAX_IMPORT_BYTES = 64 * 1024 * 1024
_WRITE = "doge_write"  # execution option that marks a write transaction
_SCHEMA_LOCK = 0x646F6765  # PostgreSQL advisory lock key for creating the schema ("doge")


@dataclass(frozen=True)
class GapVersion:
    name: str
    version: int
    sha256: str
    dim: int
    description: str
    created_at: datetime  # UTC
    created_by: str
    aliases: tuple[str, ...] = ()
    provenance: dict = field(default_factory=dict, hash=False)

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "aliases": list(self.aliases),
            "sha256": self.sha256,
            "dim": self.dim,
            "description": self.description,
            "created_at": self.created_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "created_by": self.created_by,
            "provenance": self.provenance,
        }


class Registry:
    """Gaps by name and version. ``url`` is any SQLAlchemy URL; default: SQLite in the home."""

    def __init__(self, home=None, url: str | None = None):
        self.home = doge_home(home).resolve()
        url = url or os.environ.get("DOGE_REGISTRY_URL") or None
        if url is None:
            self.home.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{self.home / 'registry.db'}"
        self.url = str(url)
        self.blobs = BlobStore(self.home / "blobs")
        self._engine = _make_engine(self.url)
        self._write_engine = self._engine.execution_options(**{_WRITE: True})
        self._ensure_schema()

    def __repr__(self) -> str:
        return f"Registry(url={_safe_url(self.url)!r}, home={str(self.home)!r})"

    def close(self) -> None:
        self._engine.dispose()

    # -- reading -------------------------------------------------------------------------

    def resolve(self, ref: str | Ref | GapVersion) -> GapVersion:
        with self._tx() as s:
            row = self._resolve_row(s, _as_ref(ref))
            return _gv(row, self._aliases_of(s, row.id))

    def load_vector(self, gv_or_ref) -> np.ndarray:
        """The float32 [dim] vector, read from its blob and checked against its sha256."""
        gv = gv_or_ref if isinstance(gv_or_ref, GapVersion) else self.resolve(gv_or_ref)
        data = self.blobs.get(gv.sha256, f"gap {gv.ref}")
        vector = gapfile.decode(data, f"gap {gv.ref} ({self.blobs.path(gv.sha256)})").vector
        if vector.shape[0] != gv.dim:
            raise IntegrityError(
                f"gap {gv.ref}: blob holds {vector.shape[0]} values but the registry says {gv.dim}; "
                "remove the version and import it again"
            )
        return vector

    def list(self, name: str | None = None) -> list[GapVersion]:
        """All live versions (of ``name``, if given), sorted by name then version."""
        with self._tx() as s:
            rows_q = select(GapRow)
            alias_q = select(AliasRow.version_id, AliasRow.alias)
            if name is not None:
                rows_q = rows_q.where(GapRow.name == name)
                alias_q = alias_q.where(AliasRow.name == name)
            aliases = defaultdict(list)
            for version_id, alias in s.execute(alias_q):
                aliases[version_id].append(alias)
            rows = sorted(s.scalars(rows_q), key=lambda r: (r.name, r.version))
            return [_gv(r, tuple(sorted(aliases[r.id]))) for r in rows]

    def names(self) -> list[str]:
        with self._tx() as s:
            return self._live_names(s)

    # -- writing -------------------------------------------------------------------------

    def create(self, name: str, vector, provenance: dict, description: str = "") -> GapVersion:
        """Store ``vector`` as the next version of ``name``."""
        validate_name(name)
        vector = gapfile.as_gap_vector(vector)
        prov_text = gapfile.provenance_json(provenance)
        with self._tx(write=True) as s:
            counter = self._lock_name(s, name)
            version = counter.next_version
            # name and version go into the file itself, so an exported file describes itself
            data = gapfile.encode(vector, name, version, provenance, description)
            row = GapRow(
                name=name,
                version=version,
                sha256=self._put_blob(s, data),
                dim=int(vector.shape[0]),
                description=description,
                created_at=_now(),
                created_by=_creator(provenance),
                source="created",
                provenance=prov_text,
            )
            return self._insert(s, counter, row)

    def tag(self, ref, alias: str) -> GapVersion:
        """Point ``alias`` at ``ref``'s version, moving it if it pointed elsewhere."""
        validate_alias(alias)
        r = _as_ref(ref)
        with self._tx(write=True) as s:
            self._lock_name(s, r.name, create=False)
            row = self._resolve_row(s, r)
            existing = s.get(AliasRow, (r.name, alias))
            if existing is None:
                s.add(AliasRow(name=r.name, alias=alias, version_id=row.id))
            else:
                existing.version_id = row.id
            s.flush()
            return _gv(row, self._aliases_of(s, row.id))

    def untag(self, name: str, alias: str) -> GapVersion:
        """Remove ``alias`` from ``name``; returns the version it pointed at."""
        validate_name(name)
        with self._tx(write=True) as s:
            self._lock_name(s, name, create=False)
            found = s.get(AliasRow, (name, alias))
            if found is None:
                known = s.scalars(select(AliasRow.alias).where(AliasRow.name == name)).all()
                have = f"its aliases: {', '.join(sorted(known))}" if known else "it has no aliases"
                raise NotFound(f"gap {name!r} has no alias {alias!r}; {have}")
            row = s.get(GapRow, found.version_id)
            s.delete(found)
            s.flush()
            return _gv(row, self._aliases_of(s, row.id))

    def remove(self, ref) -> GapVersion:
        """Delete one version and its aliases; its number is never handed out again."""
        r = _as_ref(ref)
        with self._tx(write=True) as s:
            self._lock_name(s, r.name, create=False)
            row = self._resolve_row(s, r)
            gv = _gv(row, self._aliases_of(s, row.id))
            s.execute(delete(AliasRow).where(AliasRow.version_id == row.id))
            s.delete(row)
        # only after the commit: a failed removal must leave the blob in place
        self._collect_blob(gv.sha256)
        return gv

    def export(self, ref, path) -> GapVersion:
        """Write the version's file to ``path`` (``*.safetensors``); the bytes are the blob's."""
        dest = Path(path)
        gv = self.resolve(ref)
        if dest.is_dir():
            raise DogeError(f"{dest} is a folder: name the file, e.g. {dest / _file_name(gv)}")
        if dest.suffix.lower() != gapfile.SUFFIX:
            raise DogeError(f"export writes safetensors: name the file *{gapfile.SUFFIX}, e.g. {_file_name(gv)}")
        write_atomic(dest, self.blobs.get(gv.sha256, f"gap {gv.ref}"))
        return gv

    def import_file(self, path, as_name: str | None = None) -> GapVersion:
        """Add a gap file as the next version of its name (or ``as_name``); idempotent."""
        src = Path(path)
        data = _read_import(src)
        gf = gapfile.decode(data, str(src))
        name = as_name or gf.name
        if not name:
            raise DogeError(f"{src} does not name its gap (no 'doge.name' metadata): give a name to import it as")
        validate_name(name)
        provenance = {**gapfile.provenance_of(gf, str(src)), "imported_from": str(src.resolve())}
        sha = sha256_hex(data)
        with self._tx(write=True) as s:
            counter = self._lock_name(s, name)
            latest = self._latest_row(s, name)
            if latest is not None and latest.sha256 == sha:
                return _gv(latest, self._aliases_of(s, latest.id))
            row = GapRow(
                name=name,
                version=counter.next_version,
                sha256=self._put_blob(s, data),  # the file's own bytes: export -> import keeps the sha
                dim=int(gf.vector.shape[0]),
                description=gf.description or str(provenance.get("description", "")),
                created_at=_now(),
                created_by=_creator(provenance),
                source=f"imported from {src}",
                provenance=gapfile.provenance_json(provenance),
            )
            return self._insert(s, counter, row)

    # -- internals -----------------------------------------------------------------------

    @contextmanager
    def _tx(self, write: bool = False):
        engine = self._write_engine if write else self._engine
        try:
            with Session(engine, expire_on_commit=False) as s, s.begin():
                yield s
        except DBAPIError as e:
            raise DogeError(f"registry {_safe_url(self.url)}: {_first_line(e.orig)}") from e

    def _ensure_schema(self) -> None:
        try:
            have = inspect(self._engine).get_table_names()
            if all(t in have for t in Base.metadata.tables):
                return
            with self._write_engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK})
                Base.metadata.create_all(conn)  # checks again, now under the lock
        except DBAPIError as e:
            raise DogeError(
                f"cannot open the registry {_safe_url(self.url)}: {_first_line(e.orig)}; "
                "check the registry URL (--registry / DOGE_REGISTRY_URL)"
            ) from None

    def _lock_name(self, s: Session, name: str, create: bool = True) -> GapName | None:
        """The name's counter row, locked for this transaction (created if missing and asked to)."""
        q = select(GapName).where(GapName.name == name).with_for_update().execution_options(populate_existing=True)
        row = s.scalars(q).one_or_none()
        if row is None and create:
            s.execute(_insert_ignore(s, GapName, {"name": name, "next_version": 1}))
            row = s.scalars(q).one()
        return row

    def _insert(self, s: Session, counter: GapName, row: GapRow) -> GapVersion:
        counter.next_version = row.version + 1
        s.add(row)
        s.flush()
        return _gv(row, ())

    def _lock_blob(self, s: Session, sha: str) -> None:
        # SQLite writers already hold the database's write lock; PostgreSQL needs one per blob so
        # that a removal's cleanup and a new row that shares the blob never interleave.
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": int(sha[:15], 16)})

    def _put_blob(self, s: Session, data: bytes) -> str:
        sha = sha256_hex(data)
        self._lock_blob(s, sha)
        self.blobs.put(data)
        return sha

    def _collect_blob(self, sha: str) -> None:
        with self._tx(write=True) as s:
            self._lock_blob(s, sha)
            users = s.scalar(select(func.count()).select_from(GapRow).where(GapRow.sha256 == sha))
            if not users:
                self.blobs.delete(sha)

    def _latest_row(self, s: Session, name: str) -> GapRow | None:
        q = select(GapRow).where(GapRow.name == name).order_by(GapRow.version.desc()).limit(1)
        return s.scalars(q).first()

    def _resolve_row(self, s: Session, ref: Ref) -> GapRow:
        if ref.version is not None:
            q = select(GapRow).where(GapRow.name == ref.name, GapRow.version == ref.version)
            row = s.scalars(q).first()
        elif ref.alias is not None:
            q = (
                select(GapRow)
                .join(AliasRow, AliasRow.version_id == GapRow.id)
                .where(AliasRow.name == ref.name, AliasRow.alias == ref.alias)
            )
            row = s.scalars(q).first()
        else:
            row = self._latest_row(s, ref.name)
        if row is None:
            raise self._not_found(s, ref)
        return row

    def _not_found(self, s: Session, ref: Ref) -> NotFound:
        versions = s.scalars(select(GapRow.version).where(GapRow.name == ref.name).order_by(GapRow.version)).all()
        if not versions:
            return NotFound(self._unknown_name(s, ref.name))
        aliases = sorted(s.scalars(select(AliasRow.alias).where(AliasRow.name == ref.name)))
        have = f"{ref.name!r} has versions {_fmt_versions(versions)}"
        have += f" and aliases {', '.join(aliases)}" if aliases else " and no aliases"
        if ref.alias is not None:
            return NotFound(f"no alias {ref.alias!r} on gap {ref.name!r}: {have}; tag one first")
        counter = s.get(GapName, ref.name)
        gone = " (it was removed)" if counter and ref.version < counter.next_version else ""
        return NotFound(f"gap {str(ref)!r} not found{gone}: {have}")

    def _unknown_name(self, s: Session, name: str) -> str:
        if s.get(GapName, name) is not None:
            return f"every version of gap {name!r} was removed; create or import it again"
        names = self._live_names(s)
        if not names:
            return f"no gap named {name!r}: the registry is empty; create or import a gap first"
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
        if close:
            return f"no gap named {name!r}; did you mean {', '.join(map(repr, close))}?"
        return f"no gap named {name!r}; list the gaps with 'doge gap list'"

    def _live_names(self, s: Session) -> list[str]:
        return sorted(s.scalars(select(GapRow.name).distinct()))

    def _aliases_of(self, s: Session, version_id: int) -> tuple[str, ...]:
        q = select(AliasRow.alias).where(AliasRow.version_id == version_id)
        return tuple(sorted(s.scalars(q)))


def _make_engine(url: str):
    try:
        u = make_url(url)
        if u.get_backend_name() != "sqlite":
            return create_engine(u, pool_pre_ping=True)
        if u.database and u.database != ":memory:" and not u.database.startswith("file:"):
            Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(u, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
    except (ArgumentError, ValueError):
        raise DogeError(
            f"bad registry URL {_safe_url(url)!r}: use e.g. sqlite:///path/registry.db "
            "or postgresql+psycopg://user@host/db"
        ) from None
    except (NoSuchModuleError, ImportError) as e:
        raise DogeError(
            f"registry URL {_safe_url(url)!r} needs a database driver ({e}); "
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
    # writers queue instead of failing when a deferred read lock cannot be upgraded.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


def _insert_ignore(s: Session, model, values: dict):
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy import insert  # other databases: the unique key still refuses a duplicate

        return insert(model).values(**values)
    return insert(model).values(**values).on_conflict_do_nothing()


def _read_import(src: Path) -> bytes:
    if not src.is_file():
        raise NotFound(f"{src}: no such file; give the path of a .safetensors gap file")
    gapfile.refuse_pickle_suffix(src.suffix, str(src))
    if src.stat().st_size > MAX_IMPORT_BYTES:
        raise DogeError(f"{src} is larger than {MAX_IMPORT_BYTES >> 20} MiB: not a gap file")
    return src.read_bytes()


def _as_ref(ref) -> Ref:
    if isinstance(ref, GapVersion):
        return Ref(ref.name, version=ref.version)
    return ref if isinstance(ref, Ref) else parse_ref(ref)


def _gv(row: GapRow, aliases: tuple[str, ...]) -> GapVersion:
    return GapVersion(
        name=row.name,
        version=row.version,
        sha256=row.sha256,
        dim=row.dim,
        description=row.description,
        created_at=_utc(row.created_at),
        created_by=row.created_by,
        aliases=aliases,
        provenance=gapfile.provenance_from_text(row.provenance),
    )


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _utc(dt: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored one is UTC.
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _creator(provenance: dict) -> str:
    who = provenance.get("created_by")
    if who:
        return str(who)
    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return os.environ.get("USER", "unknown")


def _file_name(gv: GapVersion) -> str:
    return f"{gv.name.replace('->', '_to_')}_v{gv.version}{gapfile.SUFFIX}"


def _fmt_versions(versions: list[int]) -> str:
    vs = [f"v{v}" for v in versions]
    return ", ".join(vs if len(vs) <= 8 else [*vs[:3], "...", *vs[-3:]])


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url if "@" not in url else "<unparsable URL>"  # cannot tell where a password would be


def _first_line(exc) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
