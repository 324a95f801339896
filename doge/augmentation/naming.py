"""Names derived from labels and sources in an augmented set: unique and reversible by construction.

A label becomes a class folder (imagefolder, COCO ``images/``) and the first part of a WebDataset
key. Labels are free text (``a/b``, ``..``, ``Cat`` beside ``cat``, 300 characters), folder names
are not, so the rule is:

- a label is its own folder name when it is a safe file name as it stands: not empty, not
  starting with ``.`` (so never ``.`` or ``..``; loaders skip hidden folders), no ``/``, ``\\``,
  NUL or control character, no space or dot at either end, at most :data:`MAX_FOLDER_BYTES` bytes
  of UTF-8, not ending in ``~`` and eight hex digits (the form below), not a name OUT uses itself
  (``masks``, ``images``, ``data``, ``README.md``, ``metadata.jsonl``, ...) or a Windows device
  name (``CON``, ``NUL``, ...), and no other label of the set is the same name once case and
  Unicode normalisation are ignored (``Cat`` and ``cat`` are one folder on macOS and Windows);
- any other label becomes ``<sanitised label>~<the first 8 hex digits of sha256(label)>``, where
  the sanitised label has each unsafe character replaced by ``_``, leading dots replaced by
  ``_``, and is cut to 100 bytes.

The mapping depends only on the set of labels, is written in the card (``doge.class_folders``)
and in every metadata row (``doge_class_folder``), and :func:`check_unique` refuses the (2**-32)
case where two labels still meet.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from doge.errors import DogeError

MAX_FOLDER_BYTES = 200  # leaves room for a file name below it on a 255-byte name limit
MAX_FILE_BYTES = 230  # 255, less the room an atomic write's temp name (".NAME.xxxxxxxx.part") takes
_HASHED = re.compile(r"~[0-9a-f]{8}$")
# names OUT uses for itself, and names Windows keeps for devices (compared case-folded)
RESERVED = frozenset(
    {"masks", "images", "data", "readme.md", "metadata.jsonl", "metadata.csv", "annotations.json"}
    | {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
)
_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f\ud800-\udfff]")  # separators, controls, lone surrogates


def label_hash(label: str) -> str:
    return hashlib.sha256(label.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def _fold(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


def _is_plain(label: str) -> bool:
    return (
        bool(label)
        and not label.startswith(".")
        and not _UNSAFE.search(label)
        and label == label.strip()
        and not label.endswith(".")
        and len(label.encode("utf-8")) <= MAX_FOLDER_BYTES
        and not _HASHED.search(label)
        and _fold(label) not in RESERVED
    )


def _cut(text: str, limit: int) -> str:
    data = text.encode("utf-8")[:limit]
    return data.decode("utf-8", errors="ignore")


def _hashed(label: str) -> str:
    base = _UNSAFE.sub("_", label).strip()
    base = re.sub(r"^\.+", lambda m: "_" * len(m.group()), base)
    return f"{_cut(base, 100)}~{label_hash(label)}"


def class_folders(labels) -> dict[str, str]:
    """Each label's folder name (``""`` keeps ``""``: images without a class lie at the top)."""
    labels = sorted(set(labels))
    folds: dict[str, int] = {}
    for label in labels:
        if _is_plain(label):
            folds[_fold(label)] = folds.get(_fold(label), 0) + 1
    out = {}
    for label in labels:
        if not label:
            out[label] = ""
        elif _is_plain(label) and folds[_fold(label)] == 1:
            out[label] = label
        else:
            out[label] = _hashed(label)
    check_unique(out, "class folder")
    return out


def check_unique(names: dict[str, str], what: str) -> None:
    """Refuse two entries whose names meet (case and Unicode form ignored): one would overwrite the other."""
    seen: dict[str, str] = {}
    for entry, name in names.items():
        key = _fold(name)
        if key in seen:
            raise DogeError(f"{seen[key]!r} and {entry!r} would both be written as {what} {name!r}: rename one of them")
        seen[key] = entry


def escape_key(stem: str) -> str:
    """A file stem as a WebDataset key part: ``%`` → ``%25``, ``.`` → ``%2E`` (a key ends at its first
    dot, so ``p.q`` and ``p_q`` would otherwise meet), reversible with ``urllib.parse.unquote``."""
    return stem.replace("%", "%25").replace(".", "%2E")


def check_file_name(name: str, where: str) -> None:
    """Refuse a file name longer than a file system allows, before anything is written."""
    if len(name.encode("utf-8")) > MAX_FILE_BYTES:
        raise DogeError(
            f"{where} would write a file named {name[:40]!r}... of {len(name.encode('utf-8'))} bytes; "
            f"doge keeps names to {MAX_FILE_BYTES} (file systems allow 255): shorten that file's name"
        )
