"""Reading a finished output back: an augment OUT (imagefolder + metadata.jsonl, COCO, WebDataset) or
a plain render folder (``manifest.jsonl``), as one list of :class:`Record` with their labels already
in output pixels.

``doge augment`` writes its labels mapped through each image's geometry (COCO boxes, polygons and
RLE, label images laid out with nearest neighbour), so they are drawn as they are stored; nothing is
mapped twice. What ``doge serve --dataset`` shows and the contact sheets draw both come from here.

Everything in these files is user input, ``doge-run.json`` included: a ``file_name`` or a source path
names a file only after :func:`contained` has resolved it (symlinks followed) inside one of the
dataset's roots (:meth:`OutputFolder.roots`): OUT, the default work area beside it
(``.OUT.doge-work``), and the folders the reader named itself (``doge serve --source-root``). The
``src_root`` and ``work_dir`` a run recorded are used only when they lie inside one of those; a
folder a file inside the dataset names is never a root by itself.
"""

from __future__ import annotations

import json
import os
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from doge.errors import DogeError, NotFound, first_line
from doge.paths import inside, relative_key

RUN_FILE = "doge-run.json"  # doge augment's summary in OUT (see doge.augmentation.run)


def default_work(out: Path) -> Path:
    """doge augment's work area when none is given: ``.OUT.doge-work`` beside OUT."""
    return out.parent / f".{out.name}.doge-work"


SCORES = ("target_score", "source_similarity")


@dataclass(slots=True)
class Record:
    index: int
    id: str  # doge_id for augment's new images, else the file's name in the dataset
    file: str  # path in the dataset root, or "shard-000000.tar/key.png" for a WebDataset sample
    labels: tuple[str, ...]  # the image's class first, then any other category it has boxes of
    generated: bool
    gap: str = ""
    weight: float | None = None
    seed: int | None = None
    k: int | None = None
    target_score: float | None = None
    source_similarity: float | None = None
    filter_rejected: bool = False
    size: tuple[int, int] | None = None  # (w, h) when the files say; else read from the image on demand
    annotations: list[dict] = field(default_factory=list)  # {"category", "bbox", "segmentation"} in output px
    mask: str | None = None  # the label image's path in the dataset root
    mask_member: tuple[int, int] | None = None  # or in the image's container: a tar member, a Parquet row
    source: str | None = None  # the source image, as recorded (served only inside the run's source root)
    member: tuple[int, int] | None = None  # in its container: a tar member's (offset, size), a Parquet row (row, 0)
    container: str | None = None  # the shard (WebDataset tar, Parquet file) holding the image, in the dataset root
    controls: tuple[str, ...] = ()  # control names (their maps sit in the render folder)

    @property
    def label(self) -> str:
        return self.labels[0] if self.labels else ""

    @property
    def has_mask(self) -> bool:
        return self.mask is not None or self.mask_member is not None


@dataclass
class OutputFolder:
    """One output folder read back: its records and what its run recorded."""

    root: Path
    kind: str  # "imagefolder" | "coco" | "webdataset" | "render"
    records: list[Record]
    run: dict  # doge-run.json (augment), {} for a render folder
    stamp: tuple = ()  # what changes when the folder is rewritten (see :func:`stamp_of`)
    trusted: tuple[Path, ...] = ()  # folders the reader named (doge serve --source-root), never from the files

    @property
    def classes(self) -> list[str]:
        return sorted({label for r in self.records for label in r.labels})

    @property
    def gaps(self) -> list[str]:
        return sorted({r.gap for r in self.records if r.gap})

    def roots(self) -> list[Path]:
        """Where this dataset's files may be: OUT, its default work area, and the folders the reader
        named (``trusted``); never a folder that a file inside the dataset names."""
        return [self.root.resolve(), default_work(self.root.resolve()), *(Path(t).resolve() for t in self.trusted)]

    def recorded_root(self, key: str) -> Path | None:
        """The folder ``doge-run.json`` records under ``key`` (``src_root``, ``work_dir``), only when it
        lies inside one of :meth:`roots` (:func:`contained`, symlinks followed); else None."""
        value = self.run.get(key)
        if not isinstance(value, str) or not value or not os.path.isabs(value):
            return None
        for root in self.roots():
            if os.path.realpath(value) == str(root):
                return root
            try:
                return contained(root, value)
            except DogeError:
                continue
        return None

    def image_path(self, record: Record) -> Path:
        """The record's image file (for a WebDataset or Parquet sample: its shard)."""
        return contained(self.root, record.container or record.file)

    def image_bytes(self, record: Record) -> bytes:
        path = self.image_path(record)
        if record.member is None:
            return path.read_bytes()
        data = self._member(path, record.member, "image")
        if data is None:
            raise DogeError(f"{path} row {record.member[0]}: no image bytes")
        return data

    def mask_bytes(self, record: Record) -> bytes | None:
        """The record's label image (a PNG): its own file, or the member or cell of its container
        that holds it (a WebDataset sample's ``.mask.png``, a Parquet row's ``mask``); None without one."""
        if record.mask_member is not None:
            return self._member(self.image_path(record), record.mask_member, "mask")
        path = contained(self.root, record.mask) if record.mask else None
        return path.read_bytes() if path is not None and path.is_file() else None

    @staticmethod
    def _member(container: Path, member: tuple[int, int], column: str) -> bytes | None:
        if container.suffix == ".parquet":
            return _parquet_cell(container, member[0], column)
        offset, size = member
        with open(container, "rb") as f:
            f.seek(offset)
            return f.read(size)

    def source_path(self, record: Record) -> Path | None:
        """The source image, only when the run recorded its source dataset, that folder lies inside
        :meth:`roots`, and the source lies inside that folder."""
        src_root = self.recorded_root("src_root")
        if not record.source or src_root is None:
            return None
        return contained(src_root, record.source)

    def control_paths(self, record: Record) -> list[tuple[str, Path]]:
        """The control maps the render made for the record's source (name, path), those that exist."""
        if not record.generated or not record.controls:
            return []
        if self.kind == "render":
            folder, image = self.root, record.file
        else:
            work = self.recorded_root("work_dir") or default_work(self.root.resolve())
            if "/images/" not in record.id:
                return []
            slug, image = record.id.split("/images/", 1)
            try:
                folder, image = contained(work, slug), relative_key("images/" + image, "a doge_id")
            except DogeError:
                return []
        stem = Path(image).stem.rsplit("_", 1)[0]
        found = []
        for name in record.controls:
            try:
                path = contained(folder, f"controls/{stem}_{name}.png")
            except DogeError:
                continue
            if path.is_file():
                found.append((name, path))
        return found

    def image_size(self, record: Record) -> tuple[int, int]:
        if record.size is None:
            import io

            from PIL import Image

            try:
                if record.member is None:
                    with Image.open(self.image_path(record)) as im:
                        record.size = im.size
                else:
                    with Image.open(io.BytesIO(self.image_bytes(record))) as im:
                        record.size = im.size
            except (OSError, ValueError, DogeError, Image.DecompressionBombError):
                record.size = (1, 1)  # not readable, refused or a decompression bomb: drawn as an empty square
        return record.size


def contained(root: Path, name: str) -> Path:
    """``name`` from a dataset's files (relative to ``root``, or an absolute path such as a recorded
    source) as a path inside ``root`` with every symlink followed (:func:`doge.paths.inside`); one
    DogeError line otherwise, so no ``..``, absolute path or link reaches anything else."""
    if isinstance(name, str) and os.path.isabs(name):
        name = os.path.relpath(name, root)  # a recorded absolute path: inside() refuses what climbs out
    path = inside(root, name, f"a file of the dataset in {root}")
    try:
        mode = path.stat().st_mode
    except OSError:  # not there (or a name too long to be): the caller's is_file() says no
        return path
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # a FIFO or a device would hang or never end
        raise DogeError(f"{path} is not a regular file; a dataset holds only files and folders")
    return path


def stamp_of(root: Path) -> tuple:
    """(name, size, mtime) of the files a rewrite changes: a reader reloads when this changes."""
    names = [RUN_FILE, "metadata.jsonl", "manifest.jsonl", *sorted(p.name for p in root.glob("*.json"))]
    names += sorted(p.name for p in root.glob("shard-*.tar"))
    out = []
    for name in dict.fromkeys(names):
        try:
            st = (root / name).stat()
        except OSError:
            continue
        out.append((name, st.st_size, st.st_mtime_ns))
    return tuple(out)


def read_output(root, run: dict | None = None, trusted=()) -> OutputFolder:
    """The output folder ``root`` read back (``run``: augment's summary when it is not yet in OUT;
    ``trusted``: further folders its sources may be read from, named by the reader)."""
    trusted = tuple(Path(t) for t in trusted)
    root = Path(root)
    if not root.is_dir():
        raise NotFound(f"{root} is not a folder: give the OUT folder of a doge augment or doge render")
    stamp = stamp_of(root)
    if run is None:
        run = _load_json(contained(root, RUN_FILE)) if (root / RUN_FILE).is_file() else {}
        if not isinstance(run, dict):
            raise DogeError(f"{root / RUN_FILE} is not a doge run summary (a JSON object); move it away")
    if (root / "manifest.jsonl").is_file() and not run:
        return OutputFolder(root, "render", _render_records(root), {}, stamp, trusted)
    fmt = str(run.get("format") or _guess(root) or "")  # "": no format known (refused by _records)
    try:
        records = _records(root, fmt, run)
        controls = tuple(c.get("name") for c in _list(_dict(run.get("render")).get("controls")) if isinstance(c, dict))
    except DogeError:
        raise
    except Exception as exc:  # the folder is someone else's files: whatever they hold is one line, never a 500
        raise DogeError(
            f"{root} could not be read as a doge output ({first_line(exc)}); rerun the doge augment or render that wrote it"
        ) from None
    for r in records:
        if r.generated:
            r.controls = tuple(str(c) for c in controls if c and c != "none")
    return OutputFolder(root, fmt, records, run, stamp, trusted)


def _records(root: Path, fmt: str, run: dict) -> list[Record]:
    if fmt == "imagefolder":
        records = _imagefolder_records(root, str(run.get("label_column") or "label"))
    elif fmt == "coco":
        records = _coco_records(root, contained(root, str(run.get("annotations_name") or "annotations.json")))
    elif fmt == "webdataset":
        records = _webdataset_records(root)
    elif fmt == "parquet":
        records = _parquet_records(root, [str(c) for c in _list(run.get("class_names"))])
    else:
        raise DogeError(
            f"{root} holds no doge output (no metadata.jsonl, annotations.json, shard-*.tar or manifest.jsonl); "
            "give the OUT folder of a doge augment or doge render"
        )
    return records


def _guess(root: Path) -> str | None:
    if (root / "metadata.jsonl").is_file():
        return "imagefolder"
    if (root / "annotations.json").is_file():
        return "coco"
    if any(root.glob("shard-*.tar")):
        return "webdataset"
    if any(root.glob("data/*.parquet")):
        return "parquet"
    return None


def _load_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DogeError(f"{path} could not be read ({exc}); rewrite it with the command that made it") from None


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _float(value) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _doge_fields(row: dict) -> dict:
    """A record's doge columns (doge_outputs.doge_columns) as Record keywords; wrong types are dropped."""
    generated = bool(row.get("doge_generated"))
    return {
        "generated": generated,
        "gap": _text(row.get("doge_gaps")),
        "weight": _float(row.get("doge_edit_weight")),
        "seed": _int(row.get("doge_seed")),
        "k": _int(row.get("doge_k")),
        "target_score": _float(row.get("doge_target_score")),
        "source_similarity": _float(row.get("doge_source_similarity")),
        "source": row.get("doge_source") if isinstance(row.get("doge_source"), str) else None,
    }


def _id(row: dict, file: str) -> str:
    key = row.get("doge_id")
    return key if isinstance(key, str) and key else file


def _imagefolder_records(root: Path, label_column: str) -> list[Record]:
    records: list[Record] = []
    has_masks = (root / "masks").is_dir()
    with open(contained(root, "metadata.jsonl"), encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            file = row.get("file_name") if isinstance(row, dict) else None
            if not isinstance(file, str) or not file:
                continue
            mask = None
            if has_masks:
                mask = "masks/" + file.rsplit(".", 1)[0] + ".png"
                if not (root / mask).is_file():
                    mask = None
            records.append(
                Record(
                    len(records), _id(row, file), file, (_text(row.get(label_column)),), mask=mask, **_doge_fields(row)
                )
            )
    return records


def _coco_records(root: Path, annotations: Path) -> list[Record]:
    doc = _load_json(annotations)
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise DogeError(f"{annotations} is not a COCO file (no images list)")
    names = {
        c.get("id"): _text(c.get("name"))
        for c in doc.get("categories") or []
        if isinstance(c, dict) and c.get("id") is not None
    }
    by_image: dict = {}
    for ann in doc.get("annotations") or []:
        if isinstance(ann, dict):
            by_image.setdefault(ann.get("image_id"), []).append(ann)
    has_masks = (root / "masks").is_dir()
    records: list[Record] = []
    for image in doc["images"]:
        if not isinstance(image, dict) or not isinstance(image.get("file_name"), str):
            continue
        file = image["file_name"]
        anns = []
        counts: dict[str, int] = {}
        for ann in by_image.get(image.get("id"), []):
            category = names.get(ann.get("category_id"), _text(ann.get("category_id")))
            counts[category] = counts.get(category, 0) + 1
            box = ann.get("bbox")
            anns.append(
                {
                    "category": category,
                    "bbox": [float(v) for v in box] if _is_box(box) else None,
                    "segmentation": ann.get("segmentation"),
                }
            )
        labels = tuple(sorted(counts, key=lambda c: (-counts[c], c)))
        w, h = image.get("width"), image.get("height")
        iw, ih = _int(w), _int(h)
        size = (iw, ih) if iw and ih else None
        mask = None
        if has_masks:
            mask = "masks/" + file.removeprefix("images/").rsplit(".", 1)[0] + ".png"
            if not (root / mask).is_file():
                mask = None
        records.append(
            Record(
                len(records),
                _id(image, file),
                file,
                labels,
                size=size,
                annotations=anns,
                mask=mask,
                **_doge_fields(image),
            )
        )
    return records


def _is_box(box) -> bool:
    return isinstance(box, list) and len(box) == 4 and all(_float(v) is not None for v in box)


def _webdataset_records(root: Path) -> list[Record]:
    records: list[Record] = []
    for shard in sorted(contained(root, p.name) for p in root.glob("shard-*.tar")):
        samples: dict[str, dict] = {}
        try:
            with tarfile.open(shard) as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    # a WebDataset key ends at the first dot of the member's base name (doge's keys
                    # hold none): "a/b.png", "a/b.json" and "a/b.mask.png" are one sample's
                    folder, _, base = member.name.rpartition("/")
                    stem, _, suffix = base.partition(".")
                    sample = samples.setdefault(f"{folder}/{stem}", {})
                    if suffix == "json":
                        f = tar.extractfile(member)
                        try:
                            sample["meta"] = json.loads(f.read()) if f is not None else {}
                        except json.JSONDecodeError:
                            sample["meta"] = {}
                    elif suffix in ("png", "jpg", "jpeg", "webp"):
                        sample["image"] = (member.name, member.offset_data, member.size)
                    elif suffix == "mask.png":
                        sample["mask"] = (member.offset_data, member.size)
        except (OSError, tarfile.TarError) as exc:
            raise DogeError(f"{shard} could not be read ({exc}); rerun the doge augment that wrote it") from None
        for sample in samples.values():
            if "image" not in sample:
                continue
            meta = _dict(sample.get("meta"))
            name, offset, size = sample["image"]
            file = f"{shard.name}/{name}"
            records.append(
                Record(
                    len(records),
                    _id(meta, file),
                    file,
                    (_text(meta.get("label")),),
                    member=(offset, size),
                    mask_member=sample.get("mask"),
                    container=shard.name,
                    **_doge_fields(meta),
                )
            )
    return records


def _parquet_records(root: Path, class_names: list[str]) -> list[Record]:
    """``OUT/data/*.parquet`` (doge augment --format parquet): every column but the image bytes, read
    once; an image is read from its row group when asked for."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DogeError("reading a Parquet dataset needs pyarrow: pip install 'doge[parquet]'") from None
    records: list[Record] = []
    for path in sorted(contained(root, f"data/{p.name}") for p in (root / "data").glob("*.parquet")):
        name = path.relative_to(root).as_posix()
        try:
            pf = pq.ParquetFile(path)
            categories = _hf_category_names(pf.schema_arrow.metadata or {})
            columns = [c for c in pf.schema_arrow.names if c not in ("image", "mask")]
            has_masks = "mask" in pf.schema_arrow.names
            rows = pf.read(columns=columns).to_pylist()
        except (OSError, ValueError) as exc:
            raise DogeError(f"{path} could not be read ({exc}); rerun the doge augment that wrote it") from None
        for i, row in enumerate(rows):
            label = row.get("label")
            text = class_names[label] if isinstance(label, int) and 0 <= label < len(class_names) else _text(label)
            anns: list[dict] = []
            counts: dict[str, int] = {}
            objects = _dict(row.get("objects"))
            for n, box in enumerate(_list(objects.get("bbox"))):
                index = _list(objects.get("category"))[n] if n < len(_list(objects.get("category"))) else None
                category = categories[index] if isinstance(index, int) and 0 <= index < len(categories) else ""
                counts[category] = counts.get(category, 0) + 1
                polys = _list(objects.get("polygons"))[n] if n < len(_list(objects.get("polygons"))) else []
                rle = _list(objects.get("rle"))[n] if n < len(_list(objects.get("rle"))) else {}
                seg = polys or (rle if _dict(rle).get("counts") else None)
                anns.append({"category": category, "bbox": box if _is_box(box) else None, "segmentation": seg})
            labels = (text, *sorted((c for c in counts if c != text), key=lambda c: (-counts[c], c)))
            file = _text(row.get("file_name")) or f"{name}#{i}"
            records.append(
                Record(
                    len(records),
                    _id(row, file),
                    file,
                    labels,
                    annotations=anns,
                    member=(i, 0),
                    mask_member=(i, 0) if has_masks else None,
                    container=name,
                    **_doge_fields(row),
                )
            )
    return records


def _hf_category_names(metadata: dict) -> list[str]:
    """The names of the ``objects.category`` ClassLabel in the schema metadata ``datasets`` wrote."""
    try:
        info = json.loads(metadata[b"huggingface"])
        feature = info["info"]["features"]["objects"]["category"]
        while "names" not in feature:
            feature = feature.get("feature") or feature["features"]
        return [str(n) for n in feature["names"]]
    except (KeyError, TypeError, ValueError, AttributeError):
        return []


def _parquet_cell(path: Path, row: int, column: str) -> bytes | None:
    """The bytes of the Image cell ``column`` of row ``row`` (None: the cell holds none)."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    start = 0
    for group in range(pf.num_row_groups):
        rows = pf.metadata.row_group(group).num_rows
        if row < start + rows:
            value = pf.read_row_group(group, columns=[column]).column(column)[row - start].as_py()
            data = value.get("bytes") if isinstance(value, dict) else None
            return data if isinstance(data, bytes) else None
        start += rows
    raise DogeError(f"{path} has no row {row} (was it rewritten?)")


def _render_records(root: Path) -> list[Record]:
    from doge.rendering import manifest

    records: list[Record] = []
    for image, entry in manifest.read(root / "manifest.jsonl").items():
        verdict, gaps, geometry = _dict(entry.get("filter")), _list(entry.get("gaps")), _dict(entry.get("geometry"))
        size = geometry.get("output_size")
        records.append(
            Record(
                len(records),
                image,
                image,
                ("",),
                generated=True,
                gap=",".join(f"{g.get('ref')}:{g.get('weight')}" for g in gaps if isinstance(g, dict)),
                weight=_float(entry.get("edit_weight")),
                seed=_int(entry.get("seed")),
                k=_int(entry.get("k")),
                target_score=_float(verdict.get("target_score")),
                source_similarity=_float(verdict.get("source_similarity")),
                filter_rejected=bool(verdict.get("rejected")),
                size=(int(size[0]), int(size[1])) if isinstance(size, list) and len(size) == 2 else None,
                controls=tuple(
                    str(c.get("name")) for c in entry.get("controls") or [] if isinstance(c, dict) and c.get("name")
                ),
            )
        )
    records = [r for r in records if os.path.basename(r.file)]
    return records
