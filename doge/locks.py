"""One writer at a time in an output folder: ``OUT/.doge.lock``.

``doge render``, ``doge filter`` and ``doge augment`` read an output folder's manifest, decide
what to write and then write it; two of them at once would each plan the same images and leave
every manifest line twice. :func:`output_lock` makes the second one stop with one line naming
the first.

The lock is a file that says who holds it (pid, host, command, since when). It appears whole or
not at all: its text is written to a private file first, which is then hard-linked to the lock's
name, and a link fails when the name exists. A lock whose process has died on this host is taken
over; one from another host (a shared folder) cannot be checked from here, so it is reported
with how to clear it. An output folder on an object store is locked on this machine only (see
:func:`_lock_folder`): two machines writing one bucket prefix are not kept apart.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from doge.atomic import make_dirs
from doge.clock import now_iso
from doge.errors import DogeError

log = logging.getLogger("doge")

LOCK_NAME = ".doge.lock"

_held: dict[Path, tuple[int, int]] = {}  # lock path -> (thread ident, depth): re-entry in one thread
_held_guard = threading.Lock()


class FolderLocked(DogeError):
    """Another doge command is writing into the folder."""


@contextmanager
def output_lock(folder, command: str) -> Iterator[Path]:
    """Hold ``folder``'s lock (creating the folder) for the ``with`` block; yields the lock's path.

    ``command`` names the holder in messages (``"render"``). The thread that holds a folder may
    take it again (a render inside an augment); any other thread or process gets
    :class:`FolderLocked`.
    """
    folder = make_dirs(_lock_folder(folder))
    lock = folder.absolute() / LOCK_NAME
    me = threading.get_ident()
    with _held_guard:
        thread, depth = _held.get(lock, (None, 0))
        if thread == me:
            _held[lock] = (me, depth + 1)
    if thread == me:
        try:
            yield lock
        finally:
            with _held_guard:
                _held[lock] = (me, depth)
        return
    mine = _acquire(lock, command)
    with _held_guard:
        _held[lock] = (me, 1)
    try:
        yield lock
    finally:
        with _held_guard:
            _held.pop(lock, None)
        _release(lock, mine)


def _lock_folder(folder: Path) -> Path:
    """Where ``folder``'s lock lives: in it, or for an object store (no exclusive create there) in a
    local folder named after its URL, so two runs on this machine still exclude each other."""
    from doge import storage

    if not storage.is_remote(folder):
        return folder
    import hashlib
    import tempfile

    name = hashlib.sha256(str(folder).rstrip("/").encode()).hexdigest()[:24]
    return Path(tempfile.gettempdir()) / "doge-locks" / name


def _acquire(lock: Path, command: str) -> bytes:
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command,
        "argv": shlex.join(sys.argv),
        "since": now_iso(),
        "process": _process_token(os.getpid()),
    }
    mine = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
    for _ in range(5):  # each round either takes the lock, refuses, or clears a stale one
        if _create(lock, mine):
            return mine
        try:
            theirs = lock.read_bytes()
        except FileNotFoundError:
            continue  # released just now: try again
        except IsADirectoryError:
            raise DogeError(f"{lock} is a folder where doge keeps its lock file; remove it and run again") from None
        found = _parse(theirs)
        if found is None or not _is_stale(found):
            raise FolderLocked(_held_by(lock, found))
        if _take_over(lock, theirs):
            log.warning(
                "%s was locked by doge %s (pid %s), which is no longer running: taking the lock over",
                lock.parent,
                found.get("command", "?"),
                found.get("pid"),
            )
    raise FolderLocked(f"{lock.parent} is being locked and unlocked by other doge commands; try again")


def _create(lock: Path, data: bytes) -> bool:
    """Write ``data`` to ``lock`` if no lock exists; False if one does. Atomic."""
    private = lock.with_name(f"{lock.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask decides, as for outputs
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(private, lock)
            return True
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: an exclusive create, then the text
            return _create_exclusive(lock, data)
    finally:
        private.unlink(missing_ok=True)


def _create_exclusive(lock: Path, data: bytes) -> bool:
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return True


def _take_over(lock: Path, stale: bytes) -> bool:
    """Remove ``lock`` if it still holds ``stale``; True if this call removed it.

    It is moved aside first (one process wins a rename), then compared: if another process took
    the stale lock over in between, the lock just moved is theirs and is put back.
    """
    aside = lock.with_name(f"{lock.name}.stale.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return False
    try:
        if aside.read_bytes() == stale:
            return True
        with suppress(OSError):
            os.link(aside, lock)
        return False
    finally:
        aside.unlink(missing_ok=True)


def _release(lock: Path, mine: bytes) -> None:
    try:
        if lock.read_bytes() == mine:  # never remove a lock that someone else took over
            lock.unlink()
    except FileNotFoundError:
        pass


def _parse(data: bytes) -> dict | None:
    try:
        found = json.loads(data)
    except ValueError:
        return None
    return found if isinstance(found, dict) and isinstance(found.get("pid"), int) else None


def _is_stale(found: dict) -> bool:
    """The holder ran on this host and is no longer running (or its pid now names another process)."""
    if found.get("host") != socket.gethostname():
        return False
    pid = found["pid"]
    if not _alive(pid):
        return True
    token = found.get("process")
    return token is not None and _process_token(pid) not in (None, token)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill would end the process there: never take a lock over on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return False
    return True


def _process_token(pid: int) -> str | None:
    """Tells a process from a later one with the same pid (Linux: boot id and start time)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # the command name in parentheses may hold spaces
    return f"{boot}:{fields[19]}" if len(fields) > 19 else None


def _held_by(lock: Path, found: dict | None) -> str:
    folder = lock.parent
    if found is None:
        return (
            f"{folder} is locked ({lock} exists but does not say by whom); "
            f"if no doge command is writing there, delete {lock} and run again"
        )
    who = f"doge {found.get('command', '?')} (pid {found['pid']}"
    since = f", since {found['since']}" if found.get("since") else ""
    if found.get("host") == socket.gethostname():
        return (
            f"{folder} is in use by {who} on this host{since}): an output folder takes one writer at a time; "
            "wait for that one to finish, or write into another folder"
        )
    return (
        f"{folder} is locked by {who} on host {found.get('host')}{since}); doge cannot tell from here whether "
        f"it still runs: if it has stopped, delete {lock} and run again"
    )
