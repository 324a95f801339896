"""Atomic file writes: a temp file in the same folder, fsync, rename, fsync the folder.

Files follow the umask, like any other file the user creates (a team's shared folder must stay
readable to the team), and a failed write becomes one ``WriteError`` line naming the path and
the fix, leaving no half-written file behind.
"""

from __future__ import annotations

import errno
import io
import os
import tempfile
from pathlib import Path
from typing import cast

from doge.errors import DogeError


class WriteError(DogeError):
    """A file or folder that cannot be written: full disk, read-only place, a file in the way."""


def write_error(path: str | os.PathLike, exc: OSError, what: str = "write") -> WriteError:
    """One line for an ``OSError`` met while writing ``path``: what failed and how to fix it."""
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        fix = "the disk (or your quota) is full: free some space and run it again"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "that place is read-only for you: choose a folder you can write to, or fix its permissions"
    elif code in (errno.EEXIST, errno.ENOTDIR):
        fix = "a file stands where a folder is needed: move it away, or choose another path"
    elif code == errno.EISDIR:
        fix = "a folder stands where a file is needed: name a file"
    elif code == errno.ENAMETOOLONG:
        fix = "the name is too long for this filesystem: choose a shorter path"
    else:
        fix = "check the path and the disk"
    reason = exc.strerror or type(exc).__name__
    return WriteError(f"cannot {what} {path}: {reason}; {fix}")


def make_dirs(folder: str | os.PathLike[str]) -> Path:
    """``mkdir -p`` that fails as one ``WriteError`` line; an object store has no folders to make."""
    if _remote(folder):
        return cast(Path, folder)  # a UPath, returned as given (doge's signatures write it as Path)
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(folder, e, "write to the folder") from None
    return folder


def write_atomic(path: str | os.PathLike, data: bytes, private: bool = False) -> None:
    """Write ``data`` to ``path`` so that a reader sees either the old file or the whole new one.

    The file follows the umask, or is the owner's alone (0600) when ``private`` (it holds secrets).
    On an object store (a UPath, see :mod:`doge.storage`) the object is put whole in one request
    under its final key: there is no rename, and none is needed."""
    if _remote(path):
        from doge import storage

        storage.put(path, data)
        return
    path = Path(path)
    make_dirs(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as e:
        raise write_error(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            if not private:
                os.fchmod(f.fileno(), 0o666 & ~current_umask())  # mkstemp makes 0600
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise write_error(path, e) from None
        raise
    _fsync_dir(path.parent)


def _remote(path) -> bool:
    # a UPath on a non-local filesystem; plain paths and strings are local here
    return getattr(path, "protocol", "") not in ("", "file", "local")


def current_umask() -> int:
    """The process's umask, read without changing it where the platform allows."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    # Makes the rename durable; not every platform lets a folder be opened.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_image_atomic(path: str | os.PathLike, image) -> None:
    """Save a PIL image as PNG atomically."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    write_atomic(path, buffer.getvalue())
