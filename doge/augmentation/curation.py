"""People's verdicts on an augmented set: ``OUT/doge-curation.json``, read by the next ``doge augment``.

``doge serve --dataset OUT --allow-writes`` lets a reviewer mark generated images *rejected* or
*kept*. The marks are stored beside the dataset, in one JSON file keyed by each image's
``doge_id`` (the render work area's name for it: ``<gap folder>/images/<stem>_<k>.png``, the same
whatever the output format), so a rerun of the same ``doge augment`` command drops every rejected
image from every format and refills its slot with the source's next sample, as ``--filter`` does.

The file is written atomically; a damaged or foreign file is one clear error naming it, never
silently ignored (a reviewer's work would vanish).
"""

from __future__ import annotations

import json
from pathlib import Path

from doge.atomic import write_atomic
from doge.clock import now_iso
from doge.errors import DogeError

CURATION_FILE = "doge-curation.json"
VERDICTS = ("rejected", "kept")
MAX_ID = 1000  # characters: an id is a work-area path, never this long


def curation_path(out) -> Path:
    return Path(out) / CURATION_FILE


def read_curation(out) -> dict[str, dict]:
    """``{doge_id: {"verdict": "rejected"|"kept", "by": user, "at": time, "file": name}}`` ({} if none yet)."""
    path = curation_path(out)
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DogeError(
            f"{path} could not be read ({exc}); restore it or delete it to forget the reviewers' marks"
        ) from None
    images = doc.get("images") if isinstance(doc, dict) else None
    if not isinstance(images, dict):
        raise DogeError(f'{path} is not a doge curation file (no "images" object); move it away')
    marks: dict[str, dict] = {}
    for key, mark in images.items():
        if not isinstance(mark, dict) or mark.get("verdict") not in VERDICTS:
            raise DogeError(f"{path}: the mark of {key[:80]!r} is not rejected or kept; fix or remove that entry")
        marks[key] = mark
    return marks


def rejected_ids(out) -> set[str]:
    return {key for key, mark in read_curation(out).items() if mark["verdict"] == "rejected"}


def mark(out, changes: dict[str, str | None], user: str, files: dict[str, str] | None = None) -> dict[str, dict]:
    """Set (``"rejected"``/``"kept"``) or clear (None) the verdict of each id in ``changes``; returns all marks.

    The caller holds OUT's lock (:func:`doge.locks.output_lock`), so no augment rewrites the set meanwhile.
    """
    marks = read_curation(out)
    for key, verdict in changes.items():
        if not isinstance(key, str) or not key or len(key) > MAX_ID:
            raise DogeError(f"image id {str(key)[:80]!r}: give the doge_id the dataset page shows")
        if verdict is None:
            marks.pop(key, None)
        elif verdict in VERDICTS:
            marks[key] = {"verdict": verdict, "by": user, "at": now_iso(), "file": (files or {}).get(key)}
        else:
            raise DogeError(f"verdict {verdict!r}: use one of {', '.join(VERDICTS)}")
    doc = {"doge": "curation", "version": 1, "images": dict(sorted(marks.items()))}
    write_atomic(curation_path(out), (json.dumps(doc, indent=1) + "\n").encode("utf-8"))
    return marks
