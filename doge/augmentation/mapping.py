"""Carrying labels through an output's geometry: COCO boxes, polygons and RLE masks, label images.

Each render manifest line records how its image lies over its source (``"geometry"``, a
:class:`~doge.rendering.geometry.Geometry`): a box or a polygon maps by its arithmetic, a mask is
laid out like the image with nearest neighbour, so no label value is invented.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
from PIL import Image, ImageOps

from doge.errors import DogeError
from doge.rendering.geometry import Geometry


def geometry_of(entry: dict) -> Geometry:
    """The geometry of a rendered image, from its manifest line."""
    if not entry.get("geometry"):
        raise DogeError(
            f"the manifest line of {entry.get('image')} records no geometry (an older doge made it): "
            "delete the augment work area and run again"
        )
    return Geometry.from_json(entry["geometry"])


def load_mask(path) -> Image.Image:
    """A label image as it is stored (palette and grey values are the labels), upright."""
    from doge import storage

    try:
        with storage.open_read(path) as handle, Image.open(handle) as opened:
            opened.load()
            return ImageOps.exif_transpose(opened)
    except (OSError, ValueError) as exc:
        raise DogeError(f"label image {path} could not be read ({exc}); replace it") from exc


def map_mask(geometry: Geometry, mask: Image.Image) -> Image.Image:
    """A label image laid out as the output: nearest neighbour, so no label value is invented."""
    return geometry.apply(mask, resample=Image.Resampling.NEAREST, fill=0)


# -- COCO --------------------------------------------------------------------------------------


def _mask_utils() -> ModuleType:
    # pycocotools is the optional `coco` extra: only --format coco with segmentations needs it.
    try:
        from pycocotools import mask as mask_utils
    except ImportError:
        raise DogeError("COCO masks need pycocotools: pip install 'doge[coco]'") from None
    return mask_utils


def _clip_polygon(points: np.ndarray, w: float, h: float) -> np.ndarray:
    """Sutherland-Hodgman: the part of a polygon inside [0, w] x [0, h]."""
    edges = ((0, 0.0, 1), (0, w, -1), (1, 0.0, 1), (1, h, -1))  # (axis, bound, inside direction)
    out = [tuple(p) for p in points]
    for axis, bound, sign in edges:
        if not out:
            break
        points_in, out = out, []
        for i, cur in enumerate(points_in):
            prev = points_in[i - 1]
            cur_in, prev_in = sign * (cur[axis] - bound) >= 0, sign * (prev[axis] - bound) >= 0
            if cur_in != prev_in:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                out.append(tuple(prev[j] + t * (cur[j] - prev[j]) for j in range(2)))
            if cur_in:
                out.append(cur)
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


def map_annotation(ann: dict, geometry: Geometry) -> dict | None:
    """A COCO annotation in output pixels; None when nothing of it is left in the output."""
    w, h = geometry.output_size
    mapped = {k: v for k, v in ann.items() if k not in ("bbox", "segmentation", "area")}
    seg = ann.get("segmentation")
    if isinstance(seg, list) and seg:
        polygons = []
        for poly in seg:
            points = _clip_polygon(geometry.map_points(np.asarray(poly, dtype=np.float64).reshape(-1, 2)), w, h)
            if len(points) >= 3:
                polygons.append([round(float(v), 2) for v in points.reshape(-1)])
        if not polygons:
            return None
        mu = _mask_utils()
        rle = mu.merge(mu.frPyObjects(polygons, h, w))
        mapped["segmentation"] = polygons
        mapped["area"] = float(mu.area(rle))
        box = _box_of(polygons)
    elif isinstance(seg, dict):
        mu = _mask_utils()
        sw, sh = geometry.source_size
        rle = mu.frPyObjects(seg, sh, sw) if isinstance(seg.get("counts"), list) else seg
        binary = mu.decode(rle)
        out = np.asarray(map_mask(geometry, Image.fromarray(binary * 255)), dtype=np.uint8) > 127
        if not out.any():
            return None
        encoded = mu.encode(np.asfortranarray(out.astype(np.uint8)))
        mapped["segmentation"] = {"size": [h, w], "counts": encoded["counts"].decode("ascii")}
        mapped["area"] = float(mu.area(encoded))
        x, y, bw, bh = (float(v) for v in mu.toBbox(encoded))
        box = (x, y, bw, bh)
    else:
        only_box = geometry.map_box(ann["bbox"]) if ann.get("bbox") else None
        if only_box is None:
            return None
        box = only_box
        mapped["area"] = float(box[2] * box[3])
    if not mapped["area"]:
        return None  # clipped or squeezed to nothing: a zero-area object trains nothing
    # With a segmentation, the box is the mapped segmentation's own, so the two always agree.
    mapped["bbox"] = [round(float(v), 2) for v in box]
    return mapped


def _box_of(polygons: list[list[float]]) -> tuple[float, float, float, float]:
    points = np.concatenate([np.asarray(p).reshape(-1, 2) for p in polygons])
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
