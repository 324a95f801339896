"""Writing the augmented set: ``imagefolder`` (+ metadata.jsonl), ``coco`` (one JSON) or ``webdataset`` shards.

Every writer takes the same :class:`Item` list: new images (rendered, in the work area, with their
manifest lines) and, with ``--with-sources``, the real images. Each file is written atomically;
images from the work area are hard-linked when the file system allows it (no second copy).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from doge.atomic import current_umask, make_dirs, write_atomic
from doge.augmentation.inputs import Dataset, LabelledSource
from doge.augmentation.mapping import geometry_of, load_mask, map_annotation, map_mask
from doge.rendering.plan import output_stem

FORMATS = ("imagefolder", "coco", "webdataset")
WITH_SOURCES = ("none", "link", "copy")
DEFAULT_SHARD_SIZE = 1_000_000_000


@dataclass
class Item:
    source: LabelledSource
    stem: str  # output name without suffix: "<stem>_<k>" (new) or "<stem>" (a source)
    work_image: Path | None  # the rendered PNG; None for a source itself
    entry: dict | None  # the render manifest line; None for a source
    key: str | None = None  # doge_id: the work area's name for a new image (what reviewers' marks name)

    @property
    def generated(self) -> bool:
        return self.work_image is not None


def folder_of(label: str) -> str:
    """A class's folder name (a label may hold characters a path cannot)."""
    return label.replace("/", "_").replace("\\", "_").strip(".") or "_"


def source_stem(dataset: Dataset, source: LabelledSource) -> str:
    """A source's name inside its class: its path below the class folder, '/' → '__'."""
    rel = source.rel
    if dataset.kind == "folders" and source.label and rel.startswith(source.label + "/"):
        rel = rel[len(source.label) + 1 :]
    return output_stem(rel)


def _place(src: Path, target: Path, link: bool) -> None:
    """``src`` at ``target`` atomically: a hard link (or, across file systems or with copy, a copy)."""
    make_dirs(target.parent)
    if target.exists() and target.stat().st_size == src.stat().st_size:
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
        "doge_id": item.key,
        "doge_source": str(item.source.path),
        "doge_source_sha256": e.get("source_sha256"),
        "doge_gaps": ",".join(f"{g['ref']}:{g['weight']:g}" for g in e.get("gaps", [])) or None,
        "doge_gap_sha256": ",".join(g["sha256"] for g in e.get("gaps", [])) or None,
        "doge_edit_weight": e.get("edit_weight"),
        "doge_k": e.get("k"),
        "doge_seed": e.get("seed"),
        "doge_target_score": (e.get("filter") or {}).get("target_score"),
        "doge_source_similarity": (e.get("filter") or {}).get("source_similarity"),
    }


def _file(item: Item, suffix: str = ".png") -> str:
    return item.stem + (suffix if item.generated else item.source.path.suffix.lower())


def write_imagefolder(out: Path, dataset: Dataset, items: list[Item], link: bool, label_column: str) -> int:
    """``OUT/<class>/<name>.png`` and ``OUT/metadata.jsonl`` (file_name, the label, doge's columns)."""
    rows = []
    for item in items:
        folder = folder_of(item.source.label) if item.source.label else ""
        name = f"{folder}/{_file(item)}" if folder else _file(item)
        _place(item.work_image or item.source.path, out / name, link or item.generated)
        rows.append({"file_name": name, label_column: item.source.label, **doge_columns(item)})
        if item.source.mask is not None:
            _write_mask(out, item, f"{folder}/{item.stem}.png" if folder else f"{item.stem}.png")
    _drop_stale(out, {r["file_name"] for r in rows}, "metadata.jsonl")
    write_atomic(out / "metadata.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    return len(rows)


def _drop_stale(out: Path, keep: set[str], listing: str, images_folder: str = "") -> None:
    """Remove the new images an earlier run listed (in ``listing``: metadata.jsonl or the COCO file) that
    this one does not (a changed budget, a reviewer's rejection), and their label images: no loader sees them."""
    old = out / listing
    if not old.is_file():
        return
    text = old.read_text(encoding="utf-8")
    if listing.endswith(".jsonl"):
        rows = []
        for line in text.splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    else:
        try:
            rows = json.loads(text).get("images") or []
        except (json.JSONDecodeError, AttributeError):
            return
    base = out.resolve()
    for row in rows:
        name = row.get("file_name") if isinstance(row, dict) else None
        if not (isinstance(row, dict) and row.get("doge_generated") and isinstance(name, str) and name not in keep):
            continue
        mask = "masks/" + name.removeprefix(images_folder).rsplit(".", 1)[0] + ".png"
        for stale in (name, mask):
            path = (out / stale).resolve()
            if base in path.parents:  # a name from a file in OUT: never anything outside it
                path.unlink(missing_ok=True)


def _write_mask(out: Path, item: Item, name: str) -> None:
    """The item's label image in ``OUT/masks/``, laid out as the image (nearest neighbour)."""
    mask = load_mask(item.source.mask)
    if item.entry is not None:
        mask = map_mask(geometry_of(item.entry), mask)
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    write_atomic(out / "masks" / name, buffer.getvalue())


def write_coco(out: Path, dataset: Dataset, items: list[Item], link: bool, annotations_name: str) -> int:
    """``OUT/images/`` plus ``OUT/<annotations_name>`` whose annotations follow each image's geometry."""
    from PIL import Image, ImageOps

    categories = dataset.categories or [{"id": i + 1, "name": c} for i, c in enumerate(dataset.classes) if c]
    cat_ids = {c["name"]: c["id"] for c in categories}
    images: list[dict] = []
    annotations: list[dict] = []
    for image_id, item in enumerate(items, 1):
        folder = folder_of(item.source.label) if item.source.label and dataset.kind != "coco" else ""
        name = f"images/{folder}/{_file(item)}" if folder else f"images/{_file(item)}"
        _place(item.work_image or item.source.path, out / name, link or item.generated)
        geometry = geometry_of(item.entry) if item.entry is not None else None
        with Image.open(item.work_image or item.source.path) as opened:
            wh = opened.size if geometry is None else geometry.output_size
            src_wh = ImageOps.exif_transpose(opened).size if geometry is None else geometry.source_size
        images.append({"id": image_id, "file_name": name, "width": wh[0], "height": wh[1], **doge_columns(item)})
        anns = item.source.annotations
        if dataset.kind != "coco" and item.source.label:  # a class becomes one whole-image annotation
            anns = [{"category_id": cat_ids[item.source.label], "bbox": [0, 0, *src_wh], "iscrowd": 0}]
        for ann in anns:
            mapped = map_annotation(ann, geometry) if geometry is not None else _with_area(ann)
            if mapped is not None:
                annotations.append({**mapped, "id": len(annotations) + 1, "image_id": image_id})
        if item.source.mask is not None:
            _write_mask(out, item, name.removeprefix("images/").rsplit(".", 1)[0] + ".png")
    _drop_stale(out, {image["file_name"] for image in images}, annotations_name, "images/")
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


def write_webdataset(out: Path, dataset: Dataset, items: list[Item], shard_size: int) -> int:
    """``OUT/shard-000000.tar``, …: per sample ``<key>.png``/``.jpg``, ``<key>.cls`` and ``<key>.json``.

    A shard is closed once it holds ``shard_size`` bytes; each is written to a temp file and renamed.
    """
    classes = dataset.classes
    shard, size, written = 0, 0, 0
    tar, tmp = None, None

    def close():
        nonlocal tar, tmp
        if tar is not None:
            tar.close()
            os.replace(tmp, out / f"shard-{shard:06d}.tar")
        tar, tmp = None, None

    for old in out.glob("shard-*.tar"):
        old.unlink()  # a rerun rewrites every shard: the sample order may change
    for item in items:
        if tar is None:
            fd, tmp = tempfile.mkstemp(dir=out, prefix=".shard-", suffix=".part")
            os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; a shard follows the umask
            os.close(fd)
            tar = tarfile.open(tmp, "w")  # noqa: SIM115 -- spans several samples; close() ends it
        key = (folder_of(item.source.label) + "__" if item.source.label else "") + item.stem
        key = key.replace(".", "_")
        data = (item.work_image or item.source.path).read_bytes()
        meta = {"label": item.source.label, **doge_columns(item)}
        suffix = "png" if item.generated else item.source.path.suffix.lower().lstrip(".")
        members = [
            (f"{key}.{suffix}", data),
            (f"{key}.cls", str(classes.index(item.source.label)).encode()),
            (f"{key}.json", json.dumps(meta).encode()),
        ]
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
