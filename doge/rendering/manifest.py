"""``manifest.jsonl``: one JSON line an output image; what resume reads back.

A line is appended (one write, flushed and fsynced) only after its image is in place, so a
line always names a complete image. A crash mid-append leaves at most a torn last line, which
reading ignores and the next append starts after.
"""

from __future__ import annotations

import json
import os
from contextlib import suppress
from pathlib import Path

from doge import storage
from doge.atomic import write_atomic, write_error


def read(path: Path) -> dict[str, dict]:
    """Lines by their ``image`` (path relative to the output folder); torn lines are ignored.

    An ``image`` that does not lie inside the manifest's folder (absolute, ``..``, a symlink leading
    out) is refused in one line naming it: resume, grids and ``doge filter --delete`` act on these names.
    """
    entries: dict[str, dict] = {}
    text = storage.read_text_if_exists(path)
    if text is None:
        return entries
    for n, line in enumerate(text.splitlines(), 1):
        try:
            entry = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(entry, dict) and "image" in entry:
            storage.child(path.parent, entry["image"], f"{storage.shown(path)} line {n}")
            entries[entry["image"]] = entry
    return entries


def _lines(entries) -> str:
    return "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)


def append(path: Path, entries: list[dict]) -> None:
    """Append ``entries`` as lines; a failed append (a full disk) is cut back off, so the file
    ends where it did, and becomes one ``WriteError`` line."""
    if not entries:
        return
    data = _lines(entries)
    if storage.is_remote(path):
        # An object store has no append: the whole manifest is put again, after the images it
        # lists, so the object in place always names complete images only.
        old = storage.read_text_if_exists(path) or ""
        storage.put(path, (old + ("\n" if old and not old.endswith("\n") else "") + data).encode("utf-8"))
        return
    try:
        with open(path, "a+b") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            try:
                # Start on a fresh line if an earlier run died mid-line.
                if size > 0:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        data = "\n" + data
                f.write(data.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
            except OSError:
                with suppress(OSError):
                    f.truncate(size)
                raise
    except OSError as e:
        raise write_error(path, e) from None


def rewrite(path: Path, entries: list[dict]) -> None:
    """All lines at once, atomically (``doge filter``): a reader sees the old manifest or the new one."""
    write_atomic(path, _lines(entries).encode("utf-8"))
