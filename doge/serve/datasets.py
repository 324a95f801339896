"""The datasets ``doge serve --dataset OUT`` shows: each output folder read back once (and again when
it is rewritten), filtered and paged from memory, its thumbnails made once and cached under
``DOGE_HOME/cache/thumbnails`` by the image's sha256, reviewers' marks read from OUT.

No starlette here: :mod:`doge.serve.dataset_pages` holds the views.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from doge.atomic import write_atomic
from doge.augmentation.curation import curation_path, read_curation
from doge.augmentation.readback import OutputFolder, Record, read_output
from doge.errors import DogeError, NotFound

THUMB_PX = 256
STATUSES = ("all", "unreviewed", "rejected", "kept", "filter-rejected")
HISTOGRAM_BINS = 10


@dataclass(frozen=True)
class Query:
    """What a dataset page shows: one class, one gap, a score range, a review status, new images or sources."""

    label: str | None = None
    gap: str | None = None
    min_score: float | None = None
    max_score: float | None = None
    status: str = "all"
    kind: str = "generated"  # generated | sources | all

    @classmethod
    def parse(cls, params) -> Query:
        def number(key: str) -> float | None:
            text = (params.get(key) or "").strip()
            if not text:
                return None
            try:
                value = float(text)
            except ValueError:
                raise DogeError(f"{key}={text[:40]!r}: give a number (a target score, such as 0.5)") from None
            if not math.isfinite(value):
                raise DogeError(f"{key}={text[:40]!r}: give a finite number")
            return value

        status = params.get("status") or "all"
        if status not in STATUSES:
            raise DogeError(f"status={status[:40]!r}: use one of {', '.join(STATUSES)}")
        kind = params.get("kind") or "generated"
        if kind not in ("generated", "sources", "all"):
            raise DogeError(f"kind={kind[:40]!r}: use generated, sources or all")
        label = params.get("class")
        return cls(
            label=label if label is not None and label != "*" else None,
            gap=params.get("gap") or None,
            min_score=number("min"),
            max_score=number("max"),
            status=status,
            kind=kind,
        )

    def params(self) -> dict[str, str]:
        """The query as URL parameters (for links that keep it)."""
        out = {
            "class": self.label,
            "gap": self.gap,
            "min": None if self.min_score is None else f"{self.min_score:g}",
            "max": None if self.max_score is None else f"{self.max_score:g}",
            "status": None if self.status == "all" else self.status,
            "kind": None if self.kind == "generated" else self.kind,
        }
        return {k: v for k, v in out.items() if v is not None}


class ServedDataset:
    """One ``--dataset`` folder: read back lazily, reloaded when its files change."""

    def __init__(self, name: str, root: Path, trusted=()):
        self.name = name
        self.root = Path(root)
        self.trusted = tuple(Path(t) for t in trusted)  # --source-root: sources may be read there too
        self._folder: OutputFolder | None = None
        self._marks: tuple[tuple, dict[str, dict]] | None = None
        self._filtered: OrderedDict = OrderedDict()
        self._summary: tuple[tuple, list[dict]] | None = None
        self._lock = threading.Lock()

    # -- reading -----------------------------------------------------------------------------

    def folder(self) -> OutputFolder:
        from doge.augmentation.readback import stamp_of

        with self._lock:
            if self._folder is None or self._folder.stamp != stamp_of(self.root):
                self._folder = read_output(self.root, trusted=self.trusted)
                self._filtered.clear()
            return self._folder

    def marks(self) -> dict[str, dict]:
        path = curation_path(self.root)
        try:
            st = path.stat()
            stamp: tuple = (st.st_size, st.st_mtime_ns)
        except OSError:
            stamp = ()
        with self._lock:
            if self._marks is None or self._marks[0] != stamp:
                self._marks = (stamp, read_curation(self.root))
            return self._marks[1]

    @property
    def curatable(self) -> bool:
        """Reviewers' marks feed back only into doge augment (a render folder has no budget to refill)."""
        return self.folder().kind != "render"

    def status(self, record: Record, marks: dict[str, dict]) -> str:
        mark = marks.get(record.id)
        if mark is not None:
            return mark["verdict"]
        return "filter-rejected" if record.filter_rejected else "unreviewed"

    def select(self, query: Query) -> list[Record]:
        """The records ``query`` picks, in the folder's order (cached: paging a filter costs nothing)."""
        folder, marks = self.folder(), self.marks()
        key = (query, self._marks[0] if self._marks else ())
        with self._lock:
            hit = self._filtered.get(key)
            if hit is not None:
                self._filtered.move_to_end(key)
                return hit
        records = folder.records
        if query.kind != "all":
            want = query.kind == "generated"
            records = [r for r in records if r.generated is want]
        if query.label is not None:
            records = [r for r in records if query.label in r.labels]
        if query.gap is not None:
            records = [r for r in records if r.gap == query.gap]
        if query.min_score is not None:
            lo = query.min_score
            records = [r for r in records if r.target_score is not None and r.target_score >= lo]
        if query.max_score is not None:
            hi = query.max_score
            records = [r for r in records if r.target_score is not None and r.target_score <= hi]
        if query.status != "all":
            records = [r for r in records if self.status(r, marks) == query.status]
        with self._lock:
            self._filtered[key] = records
            while len(self._filtered) > 64:
                self._filtered.popitem(last=False)
        return records

    def record(self, index: int) -> Record:
        records = self.folder().records
        if not 0 <= index < len(records):
            raise NotFound(f"dataset {self.name} has no image {index} (it holds {len(records)}; was it rewritten?)")
        return records[index]

    def summary(self) -> list[dict]:
        """Per class: asked, made and rejected as the last run counted them, what OUT holds now, reviewers'
        pending marks, and a histogram of target scores."""
        folder, marks = self.folder(), self.marks()
        key = (folder.stamp, self._marks[0] if self._marks else ())
        if self._summary is not None and self._summary[0] == key:
            return self._summary[1]
        raw = folder.run.get("classes")
        counts: dict = raw if isinstance(raw, dict) else {}
        rows: dict[str, dict] = {}
        for r in folder.records:
            if not r.generated:
                continue
            row = rows.setdefault(r.label, {"held": 0, "rejected_marks": 0, "kept_marks": 0, "scores": []})
            row["held"] += 1
            verdict = (marks.get(r.id) or {}).get("verdict")
            if verdict == "rejected":
                row["rejected_marks"] += 1
            elif verdict == "kept":
                row["kept_marks"] += 1
            if r.target_score is not None:
                row["scores"].append(r.target_score)
        out = []
        for label in sorted(set(rows) | set(counts)):
            row = rows.get(label, {"held": 0, "rejected_marks": 0, "kept_marks": 0, "scores": []})
            found = counts.get(label)
            c: dict = found if isinstance(found, dict) else {}
            out.append(
                {
                    "class": label,
                    "asked": c.get("asked"),
                    "made": c.get("made"),
                    "rejected_by_filter": c.get("rejected"),
                    "rejected_by_people": c.get("rejected_by_people"),
                    "short": c.get("short"),
                    "held": row["held"],
                    "marked_rejected": row["rejected_marks"],
                    "marked_kept": row["kept_marks"],
                    "histogram": histogram(row["scores"]),
                }
            )
        self._summary = (key, out)
        return out


def histogram(scores: list[float], bins: int = HISTOGRAM_BINS) -> dict:
    """Counts of ``scores`` in ``bins`` equal bins over [0, 1] (widened to the scores' range when they leave it)."""
    if not scores:
        return {"lo": 0.0, "hi": 1.0, "counts": []}
    lo, hi = min(0.0, min(scores)), max(1.0, max(scores))
    counts = [0] * bins
    for s in scores:
        counts[min(bins - 1, int((s - lo) / (hi - lo) * bins))] += 1
    return {"lo": lo, "hi": hi, "counts": counts}


def dataset_names(folders, source_roots=()) -> dict[str, ServedDataset]:
    """``--dataset`` folders by their URL name: the folder's name (safe characters), made unique.
    ``source_roots`` (``--source-root``): the folders besides each dataset's own whose files the
    run's recorded source dataset and work area may be read from."""
    for folder in source_roots or []:
        if not Path(folder).is_dir():
            raise DogeError(f"--source-root {folder}: not a folder; give the source dataset a run read")
    served: dict[str, ServedDataset] = {}
    for folder in folders or []:
        path = Path(folder)
        if not path.is_dir():
            raise DogeError(f"--dataset {folder}: not a folder; give the OUT folder of a doge augment or doge render")
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", path.resolve().name).strip("._") or "dataset"
        name, n = base, 2
        while name in served:
            name, n = f"{base}-{n}", n + 1
        served[name] = ServedDataset(name, path, source_roots or ())
    return served


class Thumbnails:
    """JPEG thumbnails, made once: ``<cache>/<sha[:2]>/<sha>-<px>.jpg``, keyed by the image's sha256,
    so a rewritten image gets a new one and an unchanged one never costs a decode again."""

    def __init__(self, cache: Path, px: int = THUMB_PX):
        self.cache = Path(cache)
        self.px = px
        self._shas: dict[tuple, str] = {}

    def get(self, folder: OutputFolder, record: Record) -> tuple[bytes, str]:
        """(JPEG bytes, the image's sha256)."""
        path = folder.image_path(record)
        st = path.stat()
        key = (str(path), record.member, st.st_size, st.st_mtime_ns)
        sha = self._shas.get(key)
        data = None
        if sha is None:
            data = folder.image_bytes(record)
            sha = hashlib.sha256(data).hexdigest()
            self._shas[key] = sha
        thumb = self.cache / sha[:2] / f"{sha}-{self.px}.jpg"
        try:
            return thumb.read_bytes(), sha
        except OSError:
            pass
        from PIL import Image

        if data is None:
            data = folder.image_bytes(record)
        try:
            with Image.open(io.BytesIO(data)) as opened:
                record.size = opened.size
                image = opened.convert("RGB")
        except (OSError, ValueError) as exc:
            raise DogeError(f"{record.file} could not be decoded ({exc})") from None
        image.thumbnail((self.px, self.px))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        write_atomic(thumb, buffer.getvalue())
        return buffer.getvalue(), sha
