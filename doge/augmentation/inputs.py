"""Labelled datasets in: class folders, Hugging Face ``imagefolder``, COCO JSON, segmentation masks.

Each is read into one :class:`Dataset`: a list of :class:`LabelledSource` (an image, its class, and
any COCO annotations or label mask it has), so that the budget, the render and the writers never
care which layout the user had.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from doge import storage
from doge.errors import DogeError, NotFound

if TYPE_CHECKING:  # the render engine's image set is imported on first use
    from doge.data.images import ImageSet

METADATA_FILES = ("metadata.jsonl", "metadata.csv")
MASK_SUFFIXES = (".png", ".tif", ".tiff", ".bmp", ".gif")


@dataclass
class LabelledSource:
    path: Path
    label: str  # the class ("" when the dataset has none)
    rel: str  # path relative to the dataset root (posix): names the outputs
    image_id: int | None = None  # COCO image id
    annotations: list[dict] = field(default_factory=list)  # COCO annotations of this image
    mask: Path | None = None  # its label image (--masks)


@dataclass
class Dataset:
    root: Path
    kind: str  # "folders" | "imagefolder" | "coco" (a Hugging Face dataset reads as imagefolder or coco)
    sources: list[LabelledSource]
    label_column: str = "label"
    categories: list[dict] = field(default_factory=list)  # COCO categories
    masks: Path | None = None
    # sources that do not decode: {"file", "label", "reason"}; they travel nowhere
    skipped: list[dict] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return sorted({s.label for s in self.sources})

    def by_class(self) -> dict[str, list[int]]:
        """Source indices per class, each list in path order."""
        out: dict[str, list[int]] = {}
        for i, s in enumerate(self.sources):
            out.setdefault(s.label, []).append(i)
        return {label: sorted(ix, key=lambda i: self.sources[i].rel) for label, ix in sorted(out.items())}

    def image_set(self) -> ImageSet:
        """The sources as the render engine's :class:`~doge.data.images.ImageSet`."""
        from doge.data.images import ImageSet

        return ImageSet(root=self.root, files=[s.path for s in self.sources], labels=[s.label for s in self.sources])


def read_dataset(
    src, *, annotations=None, masks=None, label_column: str = "label", input_format: str | None = None
) -> Dataset:
    """Read ``src`` as COCO (``annotations`` given), an ``imagefolder`` (a metadata file in ``src``)
    or class folders; ``input_format`` names the layout instead of detecting it. (Hugging Face
    datasets: :func:`doge.augmentation.hf.read_any`.)"""
    root = storage.location(src)
    with storage.errors(root, "read"):
        is_folder = root.is_dir()
    if not is_folder:
        raise NotFound(f"{storage.shown(root)} is not a folder: give the folder that holds the training images")
    kind = input_format or ("coco" if annotations else _detect(root))
    if kind == "coco":
        if not annotations:
            raise DogeError("a COCO dataset needs its JSON: --annotations instances_train.json")
        dataset = _read_coco(root, storage.location(annotations))
    elif kind == "imagefolder":
        dataset = _read_imagefolder(root, label_column)
    elif kind == "folders":
        dataset = _read_folders(root)
    else:
        raise DogeError(f"unknown input format {kind!r}: use folders, imagefolder, coco or hf")
    if not dataset.sources:
        raise DogeError(f"no images found in {storage.shown(root)}: augment needs labelled training images there")
    drop_undecodable(dataset)
    if masks is not None:
        attach_masks(dataset, storage.location(masks))
    return dataset


def drop_undecodable(dataset: Dataset) -> None:
    """Take every source that does not decode (text named ``.png``, a truncated file, a decompression
    bomb) out of ``dataset`` into ``dataset.skipped`` with its reason: it is not rendered, copied,
    linked or listed, and the summary counts it."""
    from doge.data.images import decode_image

    kept = []
    for source in dataset.sources:
        # one after another: decode_image turns PIL's bomb warning into an error with
        # warnings.catch_warnings, which is not thread-safe
        reason = decode_image(source.path)[1] if source.path.is_file() else "not a regular file (a FIFO, a device)"
        if reason is not None:
            dataset.skipped.append({"file": source.rel, "label": source.label, "reason": reason})
        else:
            kept.append(source)
    dataset.sources = kept
    if not kept:
        first = dataset.skipped[0]
        raise DogeError(
            f"none of the {len(dataset.skipped)} images in {dataset.root} decodes "
            f"(first: {first['file']}: {first['reason']}): augment needs readable training images"
        )


def _detect(root: Path) -> str:
    return "imagefolder" if any((root / name).is_file() for name in METADATA_FILES) else "folders"


def _read_folders(root: Path) -> Dataset:
    from doge.data.images import discover

    found = discover(root)
    sources = []
    for f, label in zip(found.files, found.labels):
        rel = found.relative(f)
        sources.append(
            LabelledSource(storage.child(root, rel, f"the class folders of {storage.shown(root)}"), label, rel)
        )
    return Dataset(root=root, kind="folders", sources=sources)


def _metadata_rows(root: Path) -> list[tuple[str, object]]:
    """``(where, row)`` for each row of the metadata file: ``where`` names the file and line."""
    jsonl, csv_file = root / METADATA_FILES[0], root / METADATA_FILES[1]
    path = jsonl if jsonl.is_file() else csv_file
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DogeError(f"{path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    if path == jsonl:
        rows: list[tuple[str, object]] = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append((f"{jsonl} line {n}", json.loads(line)))
            except (json.JSONDecodeError, RecursionError):
                raise DogeError(f"{jsonl} line {n} is not JSON: fix or remove that line") from None
        return rows
    try:
        # the header is line 1; a quoted value may span lines, so rows are counted, not lines
        return [(f"{csv_file} row {n}", row) for n, row in enumerate(csv.DictReader(io.StringIO(text, newline="")), 1)]
    except csv.Error as exc:
        raise DogeError(f"{csv_file} is not CSV ({exc}): fix it") from None


def _read_imagefolder(root: Path, label_column: str) -> Dataset:
    sources = []
    for where, row in _metadata_rows(root):
        if not isinstance(row, dict):
            raise DogeError(f"{where} is not an object with a file_name: fix or remove that line")
        name = row.get("file_name")
        if not name or not isinstance(name, str):
            raise DogeError(f"{where} has no file_name: every row names its image")
        if label_column not in row:
            columns = ", ".join(sorted(str(c) for c in row))
            raise DogeError(f"{root}'s metadata has no {label_column!r} column (it has {columns}): pass --label-column")
        label = row[label_column]
        if not _is_id(label) or not str(label).strip():
            raise DogeError(f"{where} has no {label_column} (it holds {_short(label)}): give every image its class")
        path = storage.child(root, name, where)
        if not path.is_file():
            raise NotFound(f"{where} names {name}, which is not in {storage.shown(root)}: add it or drop its row")
        sources.append(LabelledSource(path, str(label), storage.relative(path, root)))
    return Dataset(root=root, kind="imagefolder", sources=sources, label_column=label_column)


def _read_coco(root: Path, annotations: Path) -> Dataset:
    if not annotations.is_file():
        raise NotFound(f"--annotations {annotations}: no such file")
    data = _load_json(annotations, "the COCO annotations")
    _check_coco(data, annotations)
    images, categories = data["images"], data.get("categories", [])
    names = {c["id"]: str(c["name"]) for c in categories}
    per_image: dict[int, list[dict]] = {}
    for ann in data.get("annotations", []):
        per_image.setdefault(ann["image_id"], []).append(ann)
    sources = []
    for image in images:
        where = f"{storage.shown(annotations)}: image {image['id']!r}"
        path = storage.child(root, image["file_name"], where)
        if not path.is_file():
            raise NotFound(f"{where} names {image['file_name']}, which is not in {storage.shown(root)}")
        anns = per_image.get(image["id"], [])
        _check_real_size(annotations, image, path, anns)
        rel = storage.relative(path, root)
        sources.append(LabelledSource(path, main_category(anns, names), rel, image["id"], anns))
    return Dataset(root=root, kind="coco", sources=sources, categories=categories)


def _check_real_size(annotations: Path, image: dict, path: Path, anns: list[dict]) -> None:
    """COCO coordinates are in the image as declared; a file that is another size upright (an EXIF
    rotation, a resized copy) would carry every box and polygon to the wrong pixels. An RLE mask
    must be the file's real upright size too, declared or not: a swapped ``size`` would be stretched."""
    from doge.data.images import upright_size

    size = upright_size(path)
    if size is None:
        return  # it does not decode: it is skipped with its reason
    declared = (image.get("width"), image.get("height"))
    if all(_is_number(v) for v in declared) and size != declared:
        raise DogeError(
            f"{annotations}: image {image['id']!r} ({image['file_name']}) is declared {declared[0]}x{declared[1]} "
            f"but the file is {size[0]}x{size[1]} upright (after any EXIF rotation): its boxes would land on the "
            "wrong pixels; fix width/height or the file"
        )
    for ann in anns:
        seg = ann.get("segmentation")
        if isinstance(seg, dict) and list(seg.get("size", [])) != [size[1], size[0]]:
            h, w = seg["size"]
            raise DogeError(
                f"{annotations}: annotation {_short(ann.get('id'))} of image {image['id']!r} ({image['file_name']}) "
                f"has an RLE of {h}x{w} (height x width) but the file is {size[1]}x{size[0]} upright: "
                "its mask would be stretched; fix its size or the file"
            )


def main_category(anns: list[dict], names: dict) -> str:
    """An image's class for the budget: the category with the most area in it ("" with none)."""
    area: dict[str, float] = {}
    for ann in anns:
        name = names.get(ann.get("category_id"), str(ann.get("category_id")))
        bbox = ann.get("bbox") or [0, 0, 0, 0]
        area[name] = area.get(name, 0.0) + float(ann.get("area") or bbox[2] * bbox[3])
    return max(sorted(area), key=lambda n: area[n]) if area else ""


def find_mask(masks: Path, rel: str) -> Path | None:
    """The label image for source ``rel``: same relative path, else same stem at the top, any mask
    suffix; one that leads out of ``masks`` (a symlink) is refused."""
    rel_stem = rel.rsplit(".", 1)[0]
    for base in (rel_stem, rel_stem.rsplit("/", 1)[-1]):
        for suffix in MASK_SUFFIXES:
            if (masks / (base + suffix)).is_file():
                return storage.child(masks, base + suffix, f"--masks {storage.shown(masks)}: the label image of {rel}")
    return None


def attach_masks(dataset: Dataset, masks: Path) -> None:
    if not masks.is_dir():
        raise NotFound(f"--masks {masks}: no such folder")
    missing = []
    for source in dataset.sources:
        source.mask = find_mask(masks, source.rel)
        if source.mask is None:
            missing.append(source.rel)
    if missing:
        raise DogeError(
            f"{len(missing)} sources have no label image in {masks} (first: {missing[0]}): "
            "add one per source, matched by stem (e.g. a PNG of the same name)"
        )
    for source in dataset.sources:
        assert source.mask is not None
        _check_mask_shape(source.path, source.mask)
    dataset.masks = masks


def _check_mask_shape(image: Path, mask: Path) -> None:
    """A label image must be its source's shape (or a scaled copy): a transposed or foreign one would
    be stretched over the source and its labels land on the wrong pixels."""
    from doge.data.images import upright_size

    mask_size = upright_size(mask)
    if mask_size is None:
        raise DogeError(f"label image {mask} is not an image PIL can read: replace it")
    size = upright_size(image)
    if size is None:
        return  # an unreadable source is skipped with its own warning when it renders
    (mw, mh), (w, h) = mask_size, size
    if abs(mw * h - mh * w) > max(w, h, mw, mh):  # more than a pixel of rounding apart
        raise DogeError(
            f"label image {mask} is {mw}x{mh} but its source {image} is {w}x{h} (upright): "
            "give each source a label image of its own shape (or a scaled copy of it)"
        )


# -- COCO: checked whole before anything renders ----------------------------------------------


def _load_json(path: Path, what: str):
    """``path`` parsed; a DogeError line for bytes that are not UTF-8 JSON (or nest absurdly deep)."""
    try:
        return json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise DogeError(f"{path} is not UTF-8 text (byte {exc.start}): save {what} as UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise DogeError(f"{path} is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}): fix {what}") from None
    except RecursionError:
        raise DogeError(f"{path} nests its JSON too deeply to be {what}") from None


def _short(value) -> str:
    """A value of a user's file for a one-line message: its repr, cut at 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_id(value) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _rle_total(counts: str) -> int | None:
    """The pixel count a compressed COCO RLE string covers; None when it is not one.

    The decoding of pycocotools' ``rleFrString`` (maskApi.c), which itself accepts any bytes.
    """
    runs: list[int] = []
    p = 0
    while p < len(counts):
        x, k, more = 0, 0, True
        while more:
            if p >= len(counts):
                return None  # a run cut off in the middle
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        if x < 0:
            return None
        runs.append(x)
    return sum(runs)


def _segmentation_problem(seg, image: dict) -> str | None:
    if isinstance(seg, list):
        for n, poly in enumerate(seg):
            if not isinstance(poly, list) or not all(_is_number(v) for v in poly):
                return f"segmentation polygon {n} is not a list of numbers"
            if len(poly) % 2 or len(poly) < 6:
                return f"segmentation polygon {n} has {len(poly)} coordinates (an even count, at least 6: x1, y1, x2, y2, ...)"
        return None
    if not isinstance(seg, dict):
        return f"segmentation is a {type(seg).__name__} (a list of polygons or an RLE object)"
    size, counts = seg.get("size"), seg.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        return "its RLE has no [height, width] size"
    h, w = size
    height, width = image.get("height"), image.get("width")
    if _is_number(height) and _is_number(width) and (height, width) != (h, w):
        return f"its RLE is {h}x{w} (height x width) but its image is {height}x{width}"
    if isinstance(counts, list):
        ok = all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts)
        total = sum(counts) if ok else None
    else:
        total = _rle_total(counts) if isinstance(counts, str) else None
    if total != h * w:
        return f"its RLE counts are not a run-length encoding of {h}x{w} pixels"
    return None


def _annotation_problem(ann: dict, images: dict, categories: set) -> str | None:
    if not _is_id(ann.get("image_id")) or ann["image_id"] not in images:
        return f"image_id {_short(ann.get('image_id'))} is not the id of an image in the file"
    category = ann.get("category_id")
    if (categories or category is not None) and not (_is_id(category) and (not categories or category in categories)):
        return f"category_id {_short(ann.get('category_id'))} is not the id of a category in the file"
    bbox = ann.get("bbox")
    if bbox is not None:
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            return f"bbox {_short(bbox)} is not [x, y, width, height]"
        if bbox[2] < 0 or bbox[3] < 0:
            return f"bbox {_short(bbox)} has a negative width or height"
    if ann.get("area") is not None and not (_is_number(ann["area"]) and ann["area"] >= 0):
        return f"area {_short(ann['area'])} is not a number of pixels"
    if ann.get("segmentation") is not None:
        return _segmentation_problem(ann["segmentation"], images[ann["image_id"]])
    return None


def _check_coco(data, path: Path) -> None:
    """One DogeError line for the first thing in ``data`` that is not COCO, naming where it is."""
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DogeError(f"{path} is not COCO JSON (it needs an 'images' list)")

    def fail(where: str, item, problem: str):
        ident = f" (id {_short(item.get('id'))})" if isinstance(item, dict) and "id" in item else ""
        raise DogeError(f"{path}: {where}{ident}: {problem}; fix or remove it")

    for key in ("annotations", "categories"):
        if not isinstance(data.get(key, []), list):
            raise DogeError(f"{path}: '{key}' is a {type(data[key]).__name__}; COCO makes it a list")
    images: dict = {}
    for n, image in enumerate(data["images"]):
        if not isinstance(image, dict) or not _is_id(image.get("id")):
            fail(f"images[{n}]", image, "has no id")
        if not isinstance(image.get("file_name"), str) or not image["file_name"].strip():
            fail(f"images[{n}]", image, "has no file_name")
        if image["id"] in images:
            fail(f"images[{n}]", image, "repeats an image id")
        images[image["id"]] = image
    categories = set()
    for n, category in enumerate(data.get("categories", [])):
        if not isinstance(category, dict) or not _is_id(category.get("id")) or not _is_id(category.get("name")):
            fail(f"categories[{n}]", category, "needs an id and a name")
        categories.add(category["id"])
    for n, ann in enumerate(data.get("annotations", [])):
        if not isinstance(ann, dict):
            fail(f"annotations[{n}]", ann, "is not an object")
        problem = _annotation_problem(ann, images, categories)
        if problem:
            fail(f"annotations[{n}]", ann, problem)
