"""Hugging Face datasets in: a ``save_to_disk`` folder, a folder of Parquet shards, or (Python API) a
``datasets.Dataset`` with an image column and a label, a COCO-style ``objects`` column, or a mask column.

The rows become the same :class:`~doge.augmentation.inputs.Dataset` a folder gives: each image's
stored bytes (not re-encoded) are written once to ``cache/images/`` (``000012.jpg``: row 12), a mask
column's images to ``cache/masks/``, so the render engine, Ray workers and the writers read them
as files; a rerun finds them there and writes nothing again. Parquet shards are streamed row by
row (``datasets``' streaming reader): no Arrow copy of the set is made first.

Classes come from a ``ClassLabel`` column's names (else the values as text); an ``objects``
column holds ``bbox`` (COCO ``[x, y, width, height]`` in pixels) and ``category`` lists, the way
the Hub's detection sets (cppe-5 and its kind) store them, and optional ``area``/``iscrowd``/``id``.
"""

from __future__ import annotations

import io
from pathlib import PurePosixPath
from types import ModuleType
from typing import Any

from PIL import Image

from doge import storage
from doge.atomic import write_atomic
from doge.augmentation.contact import SHEET_PREFIX
from doge.augmentation.inputs import (
    METADATA_FILES,
    Dataset,
    LabelledSource,
    attach_masks,
    drop_undecodable,
    main_category,
    read_dataset,
)
from doge.augmentation.options import DatasetInput
from doge.data.images import IMAGE_SUFFIXES
from doge.errors import DogeError

MARKERS = ("state.json", "dataset_dict.json")  # what datasets' save_to_disk leaves in a folder


def read_any(src, reading: DatasetInput, cache):
    """The labelled set ``src``, read as ``reading`` says, whatever its layout: a Hugging Face
    dataset (an object, a ``save_to_disk`` folder, Parquet shards; its images written once into
    ``cache``) here, anything else through :func:`~doge.augmentation.inputs.read_dataset`."""
    r = reading
    if r.input_format not in (None, "hf") or r.annotations:
        return read_dataset(
            src, annotations=r.annotations, masks=r.masks, label_column=r.label_column, input_format=r.input_format
        )
    if not (r.input_format == "hf" or type(src).__module__.startswith("datasets.")):
        root = storage.location(src)
        if not storage.is_folder(root) or not is_hf_folder(root):
            return read_dataset(src, masks=r.masks, label_column=r.label_column, input_format=r.input_format)
    dataset = read_hf(
        src,
        cache,
        image_column=r.image_column,
        label_column=r.label_column,
        objects_column=r.objects_column,
        mask_column=r.mask_column,
        split=r.split,
    )
    drop_undecodable(dataset)
    if r.masks is not None:
        attach_masks(dataset, storage.location(r.masks))
    return dataset


def is_hf_folder(root) -> bool:
    """A ``save_to_disk`` folder, or a folder whose only data are Parquet shards (no metadata file)."""
    if any((root / name).is_file() for name in METADATA_FILES):
        return False
    if any((root / name).is_file() for name in MARKERS):
        return True
    return bool(_parquet_files(root)) and not _has_images(root)


def is_hf_dataset(value: Any) -> bool:
    return type(value).__module__.startswith("datasets.") and hasattr(value, "features")


def open_hf(src, split: str | None = None):
    """``src`` (a Dataset, a DatasetDict, a save_to_disk folder or a folder of Parquet shards) as one
    split of rows, with its features."""
    datasets = _import_datasets()
    if isinstance(src, datasets.DatasetDict | datasets.IterableDatasetDict):
        return _pick_split(src, split, "the dataset")
    if is_hf_dataset(src):
        return src
    root = storage.location(src)
    options = getattr(root, "storage_options", None) or None
    if any((root / name).is_file() for name in MARKERS):
        with storage.errors(root, "read"):
            loaded = datasets.load_from_disk(str(root), storage_options=options)
        if isinstance(loaded, datasets.DatasetDict):
            return _pick_split(loaded, split, storage.shown(root))
        return loaded
    files = _parquet_files(root)
    if not files:
        raise DogeError(f"{storage.shown(root)} holds no save_to_disk dataset and no Parquet shards")
    with storage.errors(root, "read"):
        return datasets.load_dataset(
            "parquet", data_files=[str(f) for f in files], split="train", streaming=True, storage_options=options
        )


def read_hf(
    src,
    cache,
    *,
    image_column: str = "image",
    label_column: str = "label",
    objects_column: str = "objects",
    mask_column: str | None = None,
    split: str | None = None,
):
    """Rows of ``src`` as a :class:`~doge.augmentation.inputs.Dataset` whose files lie in ``cache``."""
    datasets = _import_datasets()
    rows = open_hf(src, split)
    features = rows.features or {}
    where = describe_source(src)
    columns = ", ".join(sorted(features)) or "none"
    if image_column not in features:
        raise DogeError(f"{where} has no image column {image_column!r} (it has {columns}): pass --image-column")
    use_objects = objects_column in features
    use_label = label_column in features
    if mask_column is not None and mask_column not in features:
        raise DogeError(f"{where} has no mask column {mask_column!r} (it has {columns}): pass --mask-column")
    if not (use_objects or use_label or mask_column):
        raise DogeError(
            f"{where} has neither a {label_column!r} nor an {objects_column!r} column (it has {columns}): "
            "pass --label-column or --objects-column"
        )
    names = _class_names(features.get(label_column)) if use_label else None
    categories = _object_names(features[objects_column]) if use_objects else None
    raw = rows.cast_column(image_column, datasets.Image(decode=False))
    if mask_column:
        raw = raw.cast_column(mask_column, datasets.Image(decode=False))
    cache = storage.location(cache)
    root = None if type(src).__module__.startswith("datasets.") else storage.location(src)
    sources: list[LabelledSource] = []
    coco_categories: dict[str, int] = {}
    for index, row in enumerate(raw):
        data, suffix = _image_bytes(row[image_column], f"{where} row {index} ({image_column})", root)
        rel = f"{index:06d}{suffix}"
        path = cache / "images" / rel
        _write_once(path, data)
        label = _label(row.get(label_column), names) if use_label else ""
        annotations: list[dict] = []
        if use_objects:
            annotations = _annotations(row[objects_column], categories, index, f"{where} row {index}")
            for ann in annotations:
                name = ann.pop("_name")
                known = categories.index(name) + 1 if categories and name in categories else None
                ann["category_id"] = coco_categories.setdefault(name, known or len(coco_categories) + 1)
            if not use_label:
                label = main_category(annotations, {i: n for n, i in coco_categories.items()})
        mask = None
        if mask_column:
            mask_data, _ = _image_bytes(row[mask_column], f"{where} row {index} ({mask_column})", root)
            mask = cache / "masks" / f"{index:06d}.png"
            _write_once(mask, _as_png(mask_data))
        sources.append(LabelledSource(path, label, rel, index if use_objects else None, annotations, mask))
    if not sources:
        raise DogeError(f"{where} has no rows: augment needs labelled training images")
    kind = "coco" if use_objects else "imagefolder"
    dataset = Dataset(root=cache / "images", kind=kind, sources=sources, label_column=label_column)
    if use_objects:
        dataset.categories = [{"id": i, "name": n} for n, i in sorted(coco_categories.items(), key=lambda kv: kv[1])]
    if mask_column:
        dataset.masks = cache / "masks"
    return dataset


def _import_datasets() -> ModuleType:
    # datasets (and pyarrow) load only when a Hugging Face dataset is read: an optional extra
    try:
        import datasets
    except ImportError:
        raise DogeError("reading a Hugging Face dataset needs the datasets package: pip install 'doge[hf]'") from None
    return datasets


def _pick_split(dataset_dict, split: str | None, where: str):
    names = sorted(dataset_dict)
    chosen = split or ("train" if "train" in dataset_dict else names[0] if len(names) == 1 else None)
    if chosen is None or chosen not in dataset_dict:
        raise DogeError(f"{where} has the splits {', '.join(names)}: pick one with --split")
    return dataset_dict[chosen]


def describe_source(src) -> str:
    """``src`` in a message or a summary: a URL without secrets, or a Dataset by its fingerprint."""
    if type(src).__module__.startswith("datasets."):
        fingerprint = getattr(src, "_fingerprint", None)
        return f"datasets.{type(src).__name__}({fingerprint})" if fingerprint else f"datasets.{type(src).__name__}"
    return storage.shown(src)


def _parquet_files(root) -> list:
    if storage.is_remote(root):
        return [root / rel for rel in storage.list_files(root) if rel.endswith(".parquet")]
    return sorted(p for p in root.rglob("*.parquet") if not any(part.startswith(".") for part in p.parts))


def _has_images(root) -> bool:
    """Whether ``root`` holds image files besides the contact sheets an augment run leaves at its top."""
    if storage.is_remote(root):
        names = [PurePosixPath(rel) for rel in storage.list_files(root)]
    else:
        names = [p.relative_to(root) for p in root.rglob("*") if p.is_file()]
    return any(n.suffix.lower() in IMAGE_SUFFIXES and not _is_contact_sheet(n) for n in names)


def _is_contact_sheet(relative) -> bool:
    return len(relative.parts) == 1 and relative.name.startswith(SHEET_PREFIX)


def _class_names(feature) -> list[str] | None:
    return list(feature.names) if hasattr(feature, "names") else None


def _object_names(feature) -> list[str] | None:
    """The category names of an objects column (a dict of lists, or a list of dicts)."""
    inner = getattr(feature, "feature", feature)
    if isinstance(inner, dict) and "category" in inner:
        category = inner["category"]
        return _class_names(getattr(category, "feature", category))
    raise DogeError(f"the objects column is {feature!r}: it needs bbox and category fields (COCO-style)")


def _label(value, names: list[str] | None) -> str:
    if names is not None and isinstance(value, int) and 0 <= value < len(names):
        return names[value]
    return "" if value is None else str(value)


def _image_bytes(value, where: str, root) -> tuple[bytes, str]:
    """The stored bytes of an Image cell and the file suffix they call for.

    A cell without bytes names a file: it is read only when that name is a relative key inside the
    dataset's own folder ``root`` (the one containment rule, :func:`doge.storage.child`); a dataset
    passed from Python has no folder (``root`` None), so such a cell is refused."""
    if not isinstance(value, dict) or not (value.get("bytes") or value.get("path")):
        raise DogeError(f"{where} holds no image: fix or drop that row")
    data = value.get("bytes")
    if not data:
        if root is None:
            raise DogeError(
                f"{where} names the file {str(value['path'])[:80]!r} instead of holding its bytes: a dataset "
                "passed from Python has no folder to hold it in, so it must carry its images' bytes; fix or drop that row"
            )
        path = storage.child(root, value["path"], where)
        if not storage.is_file(path):
            raise DogeError(
                f"{where} names {str(value['path'])[:80]!r}, which is no file in {storage.shown(root)}: "
                "fix or drop that row"
            )
        data = storage.read_bytes(path)
    suffix = PurePosixPath(str(value.get("path") or "")).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        suffix = _sniff(data)
    return data, suffix


def _sniff(data: bytes) -> str:
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = (image.format or "png").lower()
    except Exception:  # undecodable: keep the bytes; decoding skips it with a warning, as for files
        return ".bin"
    return {"jpeg": ".jpg", "tiff": ".tif"}.get(kind, f".{kind}")


def _as_png(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        if image.format == "PNG":
            return data
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")  # labels stay as stored: no resampling, no mode change
        return buffer.getvalue()


def _annotations(objects, categories: list[str] | None, index: int, where: str) -> list[dict]:
    """An objects cell (dict of lists, or list of dicts) as COCO annotations of image ``index``."""
    if isinstance(objects, dict):
        count = len(objects.get("bbox") or [])
        items = [{k: v[i] for k, v in objects.items() if isinstance(v, list) and i < len(v)} for i in range(count)]
    elif isinstance(objects, list):
        items = list(objects)
    else:
        raise DogeError(f"{where}: the objects cell is not a list of boxes: fix that row")
    out = []
    for n, obj in enumerate(items):
        bbox = obj.get("bbox")
        if not isinstance(bbox, list | tuple) or len(bbox) != 4 or not all(isinstance(v, int | float) for v in bbox):
            raise DogeError(f"{where}: object {n} has no bbox [x, y, width, height]: fix that row")
        category = obj.get("category", obj.get("category_id"))
        name = _label(category, categories)
        ann: dict = {
            "id": obj.get("id", n + 1),
            "image_id": index,
            "category_id": 0,  # numbered by name once the whole set is read
            "bbox": [float(v) for v in bbox],
            "area": float(obj.get("area") or bbox[2] * bbox[3]),
            "iscrowd": int(obj.get("iscrowd") or 0),
            "_name": name,
        }
        if obj.get("segmentation"):
            ann["segmentation"] = obj["segmentation"]
        out.append(ann)
    return out


def _write_once(path, data: bytes) -> None:
    """Write a source file unless a rerun finds it there already, whole."""
    try:
        if path.exists() and path.stat().st_size == len(data):
            return
    except OSError:
        pass
    write_atomic(path, data)
