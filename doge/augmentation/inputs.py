"""Labelled datasets in: class folders, Hugging Face ``imagefolder``, COCO JSON, segmentation masks.

Each is read into one :class:`Dataset`: a list of :class:`LabelledSource` (an image, its class, and
any COCO annotations or label mask it has), so that the budget, the render and the writers never
care which layout the user had.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from doge.errors import DogeError, NotFound

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
    kind: str  # "folders" | "imagefolder" | "coco"
    sources: list[LabelledSource]
    label_column: str = "label"
    categories: list[dict] = field(default_factory=list)  # COCO categories
    masks: Path | None = None

    @property
    def classes(self) -> list[str]:
        return sorted({s.label for s in self.sources})

    def by_class(self) -> dict[str, list[int]]:
        """Source indices per class, each list in path order."""
        out: dict[str, list[int]] = {}
        for i, s in enumerate(self.sources):
            out.setdefault(s.label, []).append(i)
        return {label: sorted(ix, key=lambda i: self.sources[i].rel) for label, ix in sorted(out.items())}

    def image_set(self):
        """The sources as the render engine's :class:`~doge.data.images.ImageSet`."""
        from doge.data.images import ImageSet

        return ImageSet(root=self.root, files=[s.path for s in self.sources], labels=[s.label for s in self.sources])


def read_dataset(
    src, *, annotations=None, masks=None, label_column: str = "label", input_format: str | None = None
) -> Dataset:
    """Read ``src`` as COCO (``annotations`` given), an ``imagefolder`` (a metadata file in ``src``)
    or class folders; ``input_format`` names the layout instead of detecting it."""
    root = Path(src)
    if not root.is_dir():
        raise NotFound(f"{root} is not a folder: give the folder that holds the training images")
    kind = input_format or ("coco" if annotations else _detect(root))
    if kind == "coco":
        if not annotations:
            raise DogeError("a COCO dataset needs its JSON: --annotations instances_train.json")
        dataset = _read_coco(root, Path(annotations))
    elif kind == "imagefolder":
        dataset = _read_imagefolder(root, label_column)
    elif kind == "folders":
        dataset = _read_folders(root)
    else:
        raise DogeError(f"unknown input format {kind!r}: use folders, imagefolder or coco")
    if not dataset.sources:
        raise DogeError(f"no images found in {root}: augment needs labelled training images there")
    if masks is not None:
        _attach_masks(dataset, Path(masks))
    return dataset


def _detect(root: Path) -> str:
    return "imagefolder" if any((root / name).is_file() for name in METADATA_FILES) else "folders"


def _read_folders(root: Path) -> Dataset:
    from doge.data.images import discover

    found = discover(root)
    sources = [LabelledSource(Path(f), label, found.relative(Path(f))) for f, label in zip(found.files, found.labels)]
    return Dataset(root=root, kind="folders", sources=sources)


def _metadata_rows(root: Path) -> list[dict]:
    jsonl, csv_file = root / METADATA_FILES[0], root / METADATA_FILES[1]
    if jsonl.is_file():
        rows = []
        for n, line in enumerate(jsonl.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise DogeError(f"{jsonl} line {n} is not JSON: fix or remove that line") from None
        return rows
    with open(csv_file, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _read_imagefolder(root: Path, label_column: str) -> Dataset:
    rows = _metadata_rows(root)
    sources = []
    for row in rows:
        name = row.get("file_name")
        if not name:
            raise DogeError(f"a row of {root}'s metadata has no file_name: every row names its image")
        if label_column not in row:
            columns = ", ".join(sorted(row))
            raise DogeError(f"{root}'s metadata has no {label_column!r} column (it has {columns}): pass --label-column")
        path = root / name
        if not path.is_file():
            raise NotFound(f"{root}'s metadata names {name}, which is not there: add it or drop its row")
        sources.append(LabelledSource(path, str(row[label_column]), Path(name).as_posix()))
    return Dataset(root=root, kind="imagefolder", sources=sources, label_column=label_column)


def _read_coco(root: Path, annotations: Path) -> Dataset:
    if not annotations.is_file():
        raise NotFound(f"--annotations {annotations}: no such file")
    try:
        data = json.loads(annotations.read_text(encoding="utf-8"))
        images, categories = data["images"], data.get("categories", [])
    except (json.JSONDecodeError, KeyError, TypeError):
        raise DogeError(f"{annotations} is not COCO JSON (it needs an 'images' list)") from None
    names = {c["id"]: str(c["name"]) for c in categories}
    per_image: dict[int, list[dict]] = {}
    for ann in data.get("annotations", []):
        per_image.setdefault(ann["image_id"], []).append(ann)
    sources = []
    for image in images:
        path = root / image["file_name"]
        if not path.is_file():
            raise NotFound(f"{annotations} names {image['file_name']}, which is not in {root}")
        anns = per_image.get(image["id"], [])
        sources.append(
            LabelledSource(path, _main_category(anns, names), Path(image["file_name"]).as_posix(), image["id"], anns)
        )
    return Dataset(root=root, kind="coco", sources=sources, categories=categories)


def _main_category(anns: list[dict], names: dict) -> str:
    """An image's class for the budget: the category with the most area in it ("" with none)."""
    area: dict[str, float] = {}
    for ann in anns:
        name = names.get(ann.get("category_id"), str(ann.get("category_id")))
        bbox = ann.get("bbox") or [0, 0, 0, 0]
        area[name] = area.get(name, 0.0) + float(ann.get("area") or bbox[2] * bbox[3])
    return max(sorted(area), key=lambda n: area[n]) if area else ""


def find_mask(masks: Path, rel: str) -> Path | None:
    """The label image for source ``rel``: same relative path, else same stem at the top, any mask suffix."""
    rel_stem = rel.rsplit(".", 1)[0]
    for base in (masks / rel_stem, masks / Path(rel_stem).name):
        for suffix in MASK_SUFFIXES:
            if base.with_name(base.name + suffix).is_file():
                return base.with_name(base.name + suffix)
    return None


def _attach_masks(dataset: Dataset, masks: Path) -> None:
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
    dataset.masks = masks
