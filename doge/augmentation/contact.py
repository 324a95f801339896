"""Labels drawn over images: the mask overlay ``doge serve`` lays over a thumbnail, and the contact
sheets ``doge augment`` writes into OUT (one grid PNG a class, its label, boxes, polygons and masks
drawn), so a user sees the set without a browser.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

from doge.atomic import write_atomic
from doge.augmentation.readback import OutputFolder, Record, read_output
from doge.errors import DogeError

log = logging.getLogger("doge")

SHEET_PREFIX = "contact-sheet-"
TILE = 160
COLUMNS = 6
PER_SHEET = 36


def colour(name: str) -> tuple[int, int, int]:
    """A class's colour: the same in every sheet and page (from the name's hash), never too dark."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return tuple(64 + b % 192 for b in digest[:3])  # type: ignore[return-value]


def mask_overlay(folder: OutputFolder, record: Record):
    """An RGBA image of the record's size: its label image (value 0 is background) and its COCO RLE
    masks in their classes' colours, half transparent; None when it has neither."""
    import numpy as np
    from PIL import Image

    w, h = folder.image_size(record)
    layer = np.zeros((h, w, 4), np.uint8)
    drawn = False
    data = folder.mask_bytes(record)
    if data is not None:
        with Image.open(io.BytesIO(data)) as opened:
            values = np.asarray(opened.convert("L") if opened.mode not in ("L", "P", "I", "I;16") else opened)
        if values.shape[:2] != (h, w):
            values = np.asarray(Image.fromarray(values).resize((w, h), Image.Resampling.NEAREST))
        for value in np.unique(values):
            if value == 0:
                continue
            layer[values == value] = (*colour(f"mask {int(value)}"), 140)
            drawn = True
    for ann in record.annotations:
        seg = ann.get("segmentation")
        if not isinstance(seg, dict):
            continue
        try:
            from pycocotools import mask as mu

            rle = mu.frPyObjects(seg, h, w) if isinstance(seg.get("counts"), list) else seg
            binary = mu.decode(rle).astype(bool)
        except Exception:  # a damaged RLE in a user's file is shown as not drawn
            continue
        if binary.shape == (h, w):
            layer[binary] = (*colour(ann.get("category") or ""), 140)
            drawn = True
    return Image.fromarray(layer, "RGBA") if drawn else None


def polygons(ann: dict) -> list[list[tuple[float, float]]]:
    """An annotation's polygons as point lists (none for a box or an RLE)."""
    seg = ann.get("segmentation")
    if not isinstance(seg, list):
        return []
    out = []
    for poly in seg:
        if isinstance(poly, list) and len(poly) >= 6 and all(isinstance(v, int | float) for v in poly):
            out.append([(float(poly[i]), float(poly[i + 1])) for i in range(0, len(poly) - 1, 2)])
    return out


def drawn(folder: OutputFolder, record: Record, side: int = TILE):
    """The record's image with its labels drawn, fitted into ``side`` x ``side``."""
    from PIL import Image, ImageDraw

    with Image.open(io.BytesIO(folder.image_bytes(record))) as opened:
        image = opened.convert("RGBA")
    record.size = image.size
    overlay = mask_overlay(folder, record)
    if overlay is not None:
        image = Image.alpha_composite(image, overlay)
    pen = ImageDraw.Draw(image)
    width = max(1, round(max(image.size) / side))
    for ann in record.annotations:
        fill = colour(ann.get("category") or "")
        for points in polygons(ann):
            pen.polygon(points, outline=fill, width=width)
        if ann.get("bbox"):
            x, y, bw, bh = ann["bbox"]
            pen.rectangle([x, y, x + bw, y + bh], outline=fill, width=width)
    image.thumbnail((side, side))
    tile = Image.new("RGB", (side, side + 14), (255, 255, 255))
    tile.paste(image.convert("RGB"), ((side - image.width) // 2, (side - image.height) // 2))
    text = record.label or "(no class)"
    if record.target_score is not None:
        text += f" {record.target_score:.2f}"
    ImageDraw.Draw(tile).text((2, side + 1), text[:28], fill=colour(record.label or ""))
    return tile


def sheet(folder: OutputFolder, records: list[Record], columns: int = COLUMNS):
    from PIL import Image

    rows = max(1, -(-len(records) // columns))
    canvas = Image.new("RGB", (columns * TILE, rows * (TILE + 14)), (255, 255, 255))
    for i, record in enumerate(records):
        try:
            tile = drawn(folder, record)
        except (OSError, ValueError, DogeError) as exc:
            log.warning("contact sheet: %s could not be drawn (%s)", record.file, exc)
            continue
        canvas.paste(tile, ((i % columns) * TILE, (i // columns) * (TILE + 14)))
    return canvas


def sheet_name(label: str) -> str:
    """A class's contact sheet file: its name kept readable, made unique by a hash of the label."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)[:40] or "all"
    return f"{SHEET_PREFIX}{safe}-{hashlib.sha256(label.encode('utf-8')).hexdigest()[:8]}.png"


def write_contact_sheets(out: Path, run: dict) -> dict[str, str]:
    """``OUT/contact-sheet-<class>-<hash>.png`` for each class (its first :data:`PER_SHEET` new images,
    labels drawn); returns {class: file name}. Sheets of classes no longer present are removed."""
    folder = read_output(out, run)
    names: dict[str, str] = {}
    for label in folder.classes or [""]:
        records = [r for r in folder.records if r.generated and r.label == label][:PER_SHEET]
        if not records:
            continue
        buffer = io.BytesIO()
        sheet(folder, records).save(buffer, format="PNG", optimize=True)
        names[label] = sheet_name(label)
        write_atomic(out / names[label], buffer.getvalue())
    for old in out.glob(f"{SHEET_PREFIX}*.png"):
        if old.name not in names.values():
            old.unlink(missing_ok=True)
    return names


def overview_png(out: Path, run: dict, per_class: int = COLUMNS, classes: int = 8) -> bytes | None:
    """One PNG with a row of new images for each of the first ``classes`` classes (the registry's record)."""
    folder = read_output(out, run)
    chosen: list[Record] = []
    for label in (folder.classes or [""])[:classes]:
        row = [r for r in folder.records if r.generated and r.label == label][:per_class]
        chosen += row
    if not chosen:
        return None
    buffer = io.BytesIO()
    sheet(folder, chosen, columns=per_class).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
