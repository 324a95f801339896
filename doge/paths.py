"""Paths that come from users' files, held inside their root: the one containment check.

A ``file_name`` in an imagefolder's metadata, a COCO image's ``file_name``, a mask found for a
source, and every name read back from an existing output folder on resume (its metadata, its
COCO file, its shards, a render manifest) is hostile until checked: it may be absolute, climb out
with ``..``, or pass through a symlink that leads elsewhere. :func:`relative_key` is the pure part
(a POSIX-style relative name, usable under a URL root too); :func:`inside` adds the local part
(the path, symlinks followed, lies inside the root). Every reader calls one of them; nothing else
decides whether a user's path may be read, written, linked or deleted.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from doge.errors import DogeError

_DRIVE = re.compile(r"^[A-Za-z]:")
MAX_PART = 255  # bytes of one file or folder name (ext4, APFS, NTFS alike)
MAX_PATH = 4096


def _refuse(name: object, where: str, why: str, root: object | None = None) -> DogeError:
    text = repr(name) if len(repr(name)) <= 80 else repr(str(name)[:60] + "...")
    place = f" (root {root})" if root is not None else ""
    return DogeError(
        f"{where} names {text}, {why}{place}: only files inside the root are used; fix or remove that entry"
    )


def relative_key(name: object, where: str) -> str:
    """``name`` as a clean relative POSIX key (``a/./b.png`` → ``a/b.png``), or one DogeError line.

    Refused: anything not a non-empty string, an absolute path (``/x``, ``C:x``, ``\\\\host``), a
    ``..`` part, a backslash (a Windows separator that POSIX would take for a character), NUL or
    another control character. Pure string logic: a URL root (fsspec) uses it as it is.
    """
    if not isinstance(name, str) or not name.strip():
        raise _refuse(name, where, "which is not a file name")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise _refuse(name, where, "which is not valid Unicode (a lone surrogate)") from None
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        raise _refuse(name, where, "which holds a control character")
    if "\\" in name:
        raise _refuse(name, where, "which holds a backslash (write paths with '/')")
    if name.startswith("/") or _DRIVE.match(name):
        raise _refuse(name, where, "which is an absolute path")
    parts = [p for p in PurePosixPath(name).parts if p != "."]
    if ".." in parts:
        raise _refuse(name, where, "which climbs out of its folder with '..'")
    if not parts:
        raise _refuse(name, where, "which is not a file name")
    if any(len(p.encode("utf-8")) > MAX_PART for p in parts) or len(name) > MAX_PATH:
        raise _refuse(name, where, f"which is longer than a file system allows ({MAX_PART} bytes a name)")
    return "/".join(parts)


def inside(root: str | Path, name: object, where: str) -> Path:
    """``root / name`` once ``name`` is a clean relative key and the path, every symlink followed,
    lies inside ``root`` (resolved too); otherwise one DogeError line naming ``where`` and the entry.

    The returned path is the joined one (as the user would write it), not the resolved one.
    """
    key = relative_key(name, where)
    base = Path(root)
    path = base / key
    real_root = base.resolve()
    if not path.resolve().is_relative_to(real_root):
        raise _refuse(name, where, "which leads out of its folder through a symlink", root)
    return path
