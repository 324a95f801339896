"""Writing the augmented set: ``imagefolder`` (+ metadata.jsonl), ``coco`` (one JSON), ``webdataset``
shards or ``parquet`` shards (typed, through ``datasets``).

Every writer takes the same :class:`Item` list: new images (rendered, in the work area, with their
manifest lines) and, with ``--with-sources``, the real images that decoded. Each file is written
atomically; images from the work area are hard-linked when the file system allows it (no second
copy). Every name a writer uses in OUT passes :func:`doge.storage.child` (the one rule of :mod:`doge.paths`, URL roots too) (a symlink planted in OUT
cannot send a write, a link or a deletion elsewhere), class folders and keys come from
:mod:`doge.augmentation.naming`, and a writer refuses a duplicate name instead of writing it.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from doge import storage
from doge.atomic import current_umask, make_dirs, write_atomic
from doge.augmentation.inputs import Dataset, LabelledSource
from doge.augmentation.mapping import geometry_of, load_mask, map_annotation, map_mask
from doge.augmentation.naming import check_file_name, escape_key
from doge.errors import DogeError
from doge.rendering.plan import output_stem

PARQUET_DIR = "data"  # OUT/data/train-00000-of-00002.parquet, ...: the layout `datasets` reads as split train


@dataclass
class Item:
    source: LabelledSource
    stem: str  # output name without suffix: "<stem>_<k>" (new) or "<stem>" (a source)
    work_image: Path | None  # the rendered PNG; None for a source itself
    entry: dict | None  # the render manifest line; None for a source
    folder: str = ""  # the class folder of the source's label (doge.augmentation.naming)
    doge_id: str | None = None  # the work area's name for a new image (what reviewers' marks name)

    @property
    def generated(self) -> bool:
        return self.work_image is not None

    @property
    def file(self) -> str:
        """``<folder>/<stem>.<suffix>``: the image's name in OUT (imagefolder), unique in the set."""
        name = self.stem + (".png" if self.generated else self.source.path.suffix.lower())
        return f"{self.folder}/{name}" if self.folder else name

    @property
    def flat_file(self) -> str:
        """The image's name without its class folder (a COCO input's images keep their own layout)."""
        return self.file.rsplit("/", 1)[-1]

    @property
    def key(self) -> str:
        """The WebDataset key: ``<folder>/<stem, dots escaped>`` (a key ends at its first dot)."""
        stem = escape_key(self.stem)
        return f"{self.folder}/{stem}" if self.folder else stem


def source_stem(dataset: Dataset, source: LabelledSource) -> str:
    """A source's name inside its class: its path below the class folder, '/' → '__'."""
    rel = source.rel
    if dataset.kind == "folders" and source.label and rel.startswith(source.label + "/"):
        rel = rel[len(source.label) + 1 :]
    return output_stem(rel)


def check_names(dataset: Dataset, folders: dict[str, str], with_sources: str) -> None:
    """Before anything renders: every output name fits a file system, and a source's own name never
    meets a new image's (``x_0.png`` beside the first sample of ``x.png``)."""
    stems: dict[str, dict[str, str]] = {}
    for source in dataset.sources:
        stem = source_stem(dataset, source)
        for name in (stem, output_stem(source.rel)):  # its name in OUT, and in the render work area
            check_file_name(f"{name}_{999}.png", f"source {source.rel}")
        stems.setdefault(folders[source.label], {})[stem] = source.rel
    if with_sources == "none":
        return
    for per_folder in stems.values():
        for stem, rel in per_folder.items():
            base, _, k = stem.rpartition("_")
            if base in per_folder and k.isdigit():
                raise DogeError(
                    f"source {rel} has the name the new images of {per_folder[base]} get ({stem}): "
                    "with --with-sources both would land in one file; rename one of them"
                )


def check_out(out: Path, folders: dict[str, str], annotations_name: str = "annotations.json") -> None:
    """Before anything renders: every name an existing OUT lists (metadata, COCO file, shards) and every
    folder this run writes to stays inside OUT, symlinks followed; else one line naming the entry."""
    for own in ("metadata.jsonl", "README.md", annotations_name, ".doge-parquet.part"):
        storage.child(out, own, f"{out}: its own file")  # never read or replaced through a symlink leading out
    old = out / "metadata.jsonl"
    if old.is_file():
        for where, row in _jsonl(old):
            if isinstance(row, dict) and "file_name" in row:
                storage.child(out, row["file_name"], where)
    _old_coco(storage.child(out, annotations_name, "the COCO annotations' name"))
    for pattern in ("shard-*.tar", f"{PARQUET_DIR}/*.parquet"):
        for path in out.glob(pattern):
            storage.child(out, storage.relative(path, out), f"{out}: the earlier output file")
    for folder in {f for f in folders.values() if f}:
        for base in ("", "images/", "masks/"):
            storage.child(out, base + folder, f"{out}: the class folder")
    for base in ("images", "masks", PARQUET_DIR):
        storage.child(out, base, f"{out}: the folder")


def _jsonl(path: Path):
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        try:
            yield f"{path} line {n}", json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue


def _old_coco(path: Path) -> list[dict]:
    """The image entries of an earlier COCO output, each ``file_name`` checked to lie inside OUT."""
    if not path.is_file():
        return []
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return []
    images = doc.get("images") if isinstance(doc, dict) else None
    images = [i for i in images if isinstance(i, dict)] if isinstance(images, list) else []
    for image in images:
        storage.child(path.parent, image.get("file_name"), f"{path}: image {image.get('id')!r}")
    return images


def _place(src: Path, out: Path, name: str, link: bool) -> None:
    """``src`` at ``OUT/name`` atomically: a hard link (or, across file systems or with copy, a copy)."""
    target = storage.child(out, name, f"{out}: the output file")
    make_dirs(target.parent)
    local = not storage.is_remote(target)
    if target.is_file() and not (local and target.is_symlink()) and target.stat().st_size == src.stat().st_size:
        return
    if storage.is_remote(target) or storage.is_remote(src):
        write_atomic(target, storage.read_bytes(src))  # one object, put whole under its final key
        return
    if link:
        tmp = Path(tempfile.mktemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part"))
        try:
            os.link(src, tmp)
            os.replace(tmp, target)
            return
        except OSError:
            tmp.unlink(missing_ok=True)
    write_atomic(target, src.read_bytes())


def doge_columns(item: Item) -> dict:
    """What doge records about an image in the dataset's metadata (None for a real source)."""
    e = item.entry or {}
    return {
        "doge_generated": item.generated,
        "doge_id": item.doge_id,
        "doge_class_folder": item.folder,
        "doge_source": storage.shown(item.source.path),
        "doge_source_sha256": e.get("source_sha256"),
        "doge_gaps": ",".join(f"{g['ref']}:{g['weight']:g}" for g in e.get("gaps", [])) or None,
        "doge_gap_sha256": ",".join(g["sha256"] for g in e.get("gaps", [])) or None,
        "doge_edit_weight": e.get("edit_weight"),
        "doge_k": e.get("k"),
        "doge_seed": e.get("seed"),
        "doge_target_score": (e.get("filter") or {}).get("target_score"),
        "doge_source_similarity": (e.get("filter") or {}).get("source_similarity"),
    }


def _unique(items: list[Item], attr: str, what: str) -> None:
    """The writers' last guard: two items with one name are refused, not overwritten. Exact names: two
    sources whose names differ in case already lie side by side in the user's dataset (class folders,
    which doge names, are apart case-folded too)."""
    seen: dict[str, Item] = {}
    for item in items:
        name = getattr(item, attr)
        key = name
        if key in seen:
            raise DogeError(
                f"{seen[key].source.rel} and {item.source.rel} would both be written as {what} {name!r}: "
                "rename one of them"
            )
        seen[key] = item


def write_imagefolder(out: Path, dataset: Dataset, items: list[Item], link: bool, label_column: str) -> int:
    """``OUT/<class folder>/<name>.png`` and ``OUT/metadata.jsonl`` (file_name, the label, doge's columns)."""
    _unique(items, "file", "the file")
    rows = []
    for item in items:
        _place(item.work_image or item.source.path, out, item.file, link or item.generated)
        rows.append({"file_name": item.file, label_column: item.source.label, **doge_columns(item)})
        if item.source.mask is not None:
            _write_mask(out, item, item.file.rsplit(".", 1)[0] + ".png")
    old = [row for _, row in _jsonl(out / "metadata.jsonl")] if (out / "metadata.jsonl").is_file() else []
    _drop_stale(out, old, {r["file_name"] for r in rows})
    write_atomic(out / "metadata.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    return len(rows)


def _drop_stale(out: Path, old_rows: list, keep: set[str], prefix: str = "") -> None:
    """Remove the images an earlier run made and listed that this one does not (a changed budget), and
    their masks: no loader sees them. Only a name doge itself generated, inside OUT, is ever deleted."""
    for row in old_rows:
        name = row.get("file_name") if isinstance(row, dict) else None
        if not (row.get("doge_generated") is True and isinstance(name, str) and name not in keep):
            continue
        for path in (name, "masks/" + name.removeprefix(prefix).rsplit(".", 1)[0] + ".png"):
            if storage.contains(out, path) and (out / path).is_file():
                (out / path).unlink()


def _write_mask(out: Path, item: Item, name: str) -> None:
    """The item's label image in ``OUT/masks/``, laid out as the image (nearest neighbour)."""
    write_atomic(storage.child(out, f"masks/{name}", f"{out}: the mask"), _mask_png(item))


def _mask_png(item: Item) -> bytes:
    assert item.source.mask is not None
    mask = load_mask(item.source.mask)
    if item.entry is not None:
        mask = map_mask(geometry_of(item.entry), mask)
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


def coco_categories(dataset: Dataset) -> list[dict]:
    """The COCO categories of the output: the input's own, or one per class (ids from 1, card order)."""
    return dataset.categories or [{"id": i + 1, "name": c} for i, c in enumerate(dataset.classes) if c]


def item_annotations(dataset: Dataset, item: Item, cat_ids: dict, stats: dict) -> tuple[tuple[int, int], list[dict]]:
    """The item's image size and its annotations in its own pixels; an annotation mapped to zero area
    is dropped and counted in ``stats["dropped_annotations"]``."""
    from PIL import Image, ImageOps

    geometry = geometry_of(item.entry) if item.entry is not None else None
    with storage.open_read(item.work_image or item.source.path) as handle, Image.open(handle) as opened:
        wh = opened.size if geometry is None else geometry.output_size
        src_wh = ImageOps.exif_transpose(opened).size if geometry is None else geometry.source_size
    anns = item.source.annotations
    if dataset.kind != "coco" and item.source.label:  # a class becomes one whole-image annotation
        anns = [{"category_id": cat_ids[item.source.label], "bbox": [0, 0, *src_wh], "iscrowd": 0}]
    out = []
    for ann in anns:
        mapped = map_annotation(ann, geometry) if geometry is not None else _with_area(ann)
        if mapped is None or (geometry is not None and not mapped.get("area")):
            stats["dropped_annotations"] = stats.get("dropped_annotations", 0) + 1
            continue
        out.append(mapped)
    return (int(wh[0]), int(wh[1])), out


def write_coco(out: Path, dataset: Dataset, items: list[Item], link: bool, annotations_name: str, stats: dict) -> int:
    """``OUT/images/`` plus ``OUT/<annotations_name>`` whose annotations follow each image's geometry."""
    categories = coco_categories(dataset)
    cat_ids = {c["name"]: c["id"] for c in categories}
    attr = "flat_file" if dataset.kind == "coco" else "file"  # a COCO input's stems are unique already
    _unique(items, attr, "the file")
    images: list[dict] = []
    annotations: list[dict] = []
    for image_id, item in enumerate(items, 1):
        name = f"images/{getattr(item, attr)}"
        _place(item.work_image or item.source.path, out, name, link or item.generated)
        (w, h), anns = item_annotations(dataset, item, cat_ids, stats)
        images.append({"id": image_id, "file_name": name, "width": w, "height": h, **doge_columns(item)})
        for ann in anns:
            annotations.append({**ann, "id": len(annotations) + 1, "image_id": image_id})
        if item.source.mask is not None:
            _write_mask(out, item, name.removeprefix("images/").rsplit(".", 1)[0] + ".png")
    _drop_stale(out, _old_coco(out / annotations_name), {i["file_name"] for i in images}, prefix="images/")
    doc = {
        "info": {"description": "made by doge augment", "version": "1.0"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    write_atomic(out / annotations_name, json.dumps(doc).encode())
    return len(images)


def _with_area(ann: dict) -> dict:
    out = dict(ann)
    if "area" not in out and out.get("bbox"):
        out["area"] = float(out["bbox"][2] * out["bbox"][3])
    return out


def _remove_old(out: Path, pattern: str) -> None:
    """A rerun rewrites every shard (the sample order may change): the old ones, inside OUT, go."""
    for old in out.glob(pattern):
        if storage.contains(out, storage.relative(old, out)):
            old.unlink()


def write_webdataset(out: Path, dataset: Dataset, items: list[Item], shard_size: int) -> int:
    """``OUT/shard-000000.tar``, …: per sample ``<key>.png``/``.jpg``, ``<key>.cls`` and ``<key>.json``.

    The key is ``<class folder>/<stem>`` with dots escaped (:attr:`Item.key`); ``.cls`` is the label's
    index in the card's class order. A shard is closed once it holds ``shard_size`` bytes; each is
    written to a temp file and renamed (on an object store: built in a local temp file, then put
    whole under its name).
    """
    remote = storage.is_remote(out)
    classes = dataset.classes
    _unique(items, "key", "the WebDataset key")
    shard, size, written = 0, 0, 0
    tar, tmp = None, None

    def close() -> None:
        nonlocal tar, tmp
        if tar is not None:
            tar.close()
            target = storage.child(out, f"shard-{shard:06d}.tar", f"{storage.shown(out)}: the shard")
            if remote:
                storage.put(target, Path(tmp).read_bytes())
                Path(tmp).unlink()
            else:
                os.replace(tmp, target)
        tar, tmp = None, None

    _remove_old(out, "shard-*.tar")
    for item in items:
        if tar is None:
            fd, tmp = tempfile.mkstemp(dir=None if remote else out, prefix=".shard-", suffix=".part")
            os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; a shard follows the umask
            os.close(fd)
            tar = tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115 -- spans several samples
        data = storage.read_bytes(item.work_image or item.source.path)
        meta = {"label": item.source.label, **doge_columns(item)}
        suffix = "png" if item.generated else item.source.path.suffix.lower().lstrip(".")
        members = [
            (f"{item.key}.{suffix}", data),
            (f"{item.key}.cls", str(classes.index(item.source.label)).encode()),
            (f"{item.key}.json", json.dumps(meta).encode()),
        ]
        if item.source.mask is not None:
            members.append((f"{item.key}.mask.png", _mask_png(item)))
        for name, blob in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(blob), 0o644
            tar.addfile(info, io.BytesIO(blob))
            size += len(blob) + 512
        written += 1
        if size >= shard_size:
            close()
            shard, size = shard + 1, 0
    close()
    return written


# -- Parquet ------------------------------------------------------------------------------------


def parquet_features(dataset: Dataset):
    """The typed schema of ``--format parquet`` (``datasets.Features``), one row an image:

    - ``image``: ``Image()``; ``label``: ``ClassLabel`` whose names are the card's classes, in order;
    - ``file_name`` (``<class folder>/<stem>.<suffix>``, as imagefolder names it) and
      ``doge_class_folder``: strings;
    - COCO input only, ``objects``, COCO-style, one list entry per annotation: ``id`` (int64),
      ``bbox`` ([x, y, width, height] float32, in the image's pixels), ``category``
      (``ClassLabel`` of the COCO category names in the file's category order, a name two
      categories share written ``name (id N)``), ``area`` (float32),
      ``iscrowd`` (int8), ``polygons`` (a list of [x1, y1, x2, y2, ...] float32 lists; empty for an
      RLE), ``rle`` (``{"size": [height, width], "counts": compressed COCO RLE string}``; size
      empty and counts "" for polygons or a box);
    - with ``--masks``, ``mask``: ``Image()``, the label image laid out as the image;
    - doge's provenance columns (:func:`doge_columns`): ``doge_generated`` bool, ``doge_source``,
      ``doge_source_sha256``, ``doge_gaps``, ``doge_gap_sha256`` strings, ``doge_edit_weight``,
      ``doge_target_score``, ``doge_source_similarity`` float64, ``doge_k``, ``doge_seed`` int64.
    """
    try:
        from datasets import ClassLabel, Features, Image, List, Value
    except ImportError:
        raise DogeError("--format parquet needs the datasets package: pip install 'doge[parquet]'") from None

    columns = {
        "image": Image(),
        "label": ClassLabel(names=dataset.classes),
        "file_name": Value("string"),
        "doge_class_folder": Value("string"),
    }
    if dataset.kind == "coco":
        names = category_names(dataset)
        columns["objects"] = {
            "id": List(Value("int64")),
            "bbox": List(List(Value("float32"), length=4)),
            "category": List(ClassLabel(names=names)),
            "area": List(Value("float32")),
            "iscrowd": List(Value("int8")),
            "polygons": List(List(List(Value("float32")))),
            "rle": List({"size": List(Value("int32")), "counts": Value("string")}),
        }
    if dataset.masks is not None:
        columns["mask"] = Image()
    columns.update(
        {
            "doge_generated": Value("bool"),
            "doge_id": Value("string"),
            "doge_source": Value("string"),
            "doge_source_sha256": Value("string"),
            "doge_gaps": Value("string"),
            "doge_gap_sha256": Value("string"),
            "doge_edit_weight": Value("float64"),
            "doge_k": Value("int64"),
            "doge_seed": Value("int64"),
            "doge_target_score": Value("float64"),
            "doge_source_similarity": Value("float64"),
        }
    )
    return Features(columns)


def category_names(dataset: Dataset) -> list[str]:
    """The COCO categories' names for a ClassLabel, in category order; a name that two categories
    share (COCO allows it, a ClassLabel does not) is written ``name (id N)`` for each of them."""
    categories = coco_categories(dataset)
    names = [str(c["name"]) for c in categories]
    return [n if names.count(n) == 1 else f"{n} (id {c['id']})" for n, c in zip(names, categories)]


def _objects(dataset: Dataset, anns: list[dict]) -> dict:
    index = {c["id"]: i for i, c in enumerate(coco_categories(dataset))}
    objects: dict[str, list] = {k: [] for k in ("id", "bbox", "category", "area", "iscrowd", "polygons", "rle")}
    for n, ann in enumerate(anns):
        seg = ann.get("segmentation")
        objects["id"].append(int(ann.get("id", n)))
        objects["bbox"].append([float(v) for v in ann["bbox"]])
        objects["category"].append(index[ann["category_id"]])
        objects["area"].append(float(ann["area"]))
        objects["iscrowd"].append(int(ann.get("iscrowd") or 0))
        objects["polygons"].append(seg if isinstance(seg, list) else [])
        objects["rle"].append(
            {"size": list(seg["size"]), "counts": seg["counts"]}
            if isinstance(seg, dict)
            else {"size": [], "counts": ""}
        )
    return objects


def write_parquet(out: Path, dataset: Dataset, items: list[Item], shard_size: int, stats: dict) -> int:
    """``OUT/data/train-00000-of-0000N.parquet``: rows typed by :func:`parquet_features`, written by
    ``datasets`` (so its schema metadata carries the features), a shard closed at ``shard_size`` bytes
    of image data. ``load_dataset("parquet", data_dir=OUT)`` reads it with ``label`` a ClassLabel."""
    features = parquet_features(dataset)  # first: it says so in one line when datasets is missing
    import datasets

    cat_ids = {c["name"]: c["id"] for c in coco_categories(dataset)}
    _unique(items, "file", "the file")
    remote = storage.is_remote(out)  # there: shards are made in a local temp folder, then put whole
    staging = (
        Path(tempfile.mkdtemp(prefix="doge-parquet-"))
        if remote
        else storage.child(out, ".doge-parquet.part", f"{out}: the staging folder")
    )
    if not remote and staging.is_symlink():
        staging.unlink()
    shutil.rmtree(staging, ignore_errors=True)
    make_dirs(staging)
    shards: list[Path] = []
    rows: list[dict] = []
    size = 0

    def flush() -> None:
        nonlocal rows, size
        if not rows:
            return
        path = staging / f"{len(shards):05d}.parquet"
        columns = {name: [row[name] for row in rows] for name in features}
        datasets.Dataset.from_dict(columns, features=features).to_parquet(str(path))
        shards.append(path)
        rows, size = [], 0

    for item in items:
        data = storage.read_bytes(item.work_image or item.source.path)
        row = {
            "image": {"bytes": data, "path": item.file},
            "label": dataset.classes.index(item.source.label),
            "file_name": item.file,
            **doge_columns(item),
        }
        if "objects" in features:
            _, anns = item_annotations(dataset, item, cat_ids, stats)
            row["objects"] = _objects(dataset, anns)
        if "mask" in features:
            row["mask"] = {"bytes": _mask_png(item), "path": item.file.rsplit(".", 1)[0] + ".png"}
        rows.append(row)
        size += len(data)
        if size >= shard_size:
            flush()
    flush()
    target = storage.child(out, PARQUET_DIR, f"{out}: the folder")
    make_dirs(target)
    _remove_old(out, f"{PARQUET_DIR}/*.parquet")
    for i, path in enumerate(shards):
        final = target / f"train-{i:05d}-of-{len(shards):05d}.parquet"
        if remote:
            storage.put(final, path.read_bytes())
            continue
        os.chmod(path, 0o666 & ~current_umask())
        os.replace(path, final)
    shutil.rmtree(staging, ignore_errors=True)
    return len(items)
