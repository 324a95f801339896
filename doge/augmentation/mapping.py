"""Carrying labels through an output's geometry: COCO boxes, polygons and RLE masks, label images.

A render manifest line records how its image maps to its source (``"geometry"``, see
:mod:`doge.rendering.geometry`). A line written before that key existed comes from a render that
resized every source to ``size`` x ``size``; :class:`Stretch` is that mapping, with the same methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module

import numpy as np
from PIL import Image, ImageOps

from doge.errors import DogeError

_SWAPPED_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that turn the image a quarter


@dataclass(frozen=True)
class Stretch:
    """A source resized to ``output_size`` without regard to its aspect ratio."""

    source_size: tuple[int, int]
    output_size: tuple[int, int]

    @property
    def scale(self) -> tuple[float, float]:
        return (self.output_size[0] / self.source_size[0], self.output_size[1] / self.source_size[1])

    def map_points(self, xy) -> np.ndarray:
        return np.asarray(xy, dtype=np.float64).reshape(-1, 2) * np.asarray(self.scale)

    def map_box(self, box):
        x, y, w, h = (float(v) for v in box)
        (x0, y0), (x1, y1) = self.map_points([[x, y], [x + w, y + h]])
        x0, x1 = np.clip([x0, x1], 0, self.output_size[0])
        y0, y1 = np.clip([y0, y1], 0, self.output_size[1])
        if x1 <= x0 or y1 <= y0:
            return None
        return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))

    def apply(self, image: Image.Image, resample=Image.Resampling.LANCZOS, fill=0) -> Image.Image:
        return image.resize(self.output_size, resample)


def source_size(path) -> tuple[int, int]:
    """(w, h) of the decoded, EXIF-transposed image, read from its header."""
    with Image.open(path) as image:
        w, h = image.size
        orientation = image.getexif().get(0x0112)
    return (h, w) if orientation in _SWAPPED_ORIENTATIONS else (w, h)


def geometry_of(entry: dict, size: tuple[int, int]):
    """The geometry of a rendered image from its manifest line; ``size`` is its source's (w, h)."""
    if entry.get("geometry"):
        # The module arrives with the --fit work; a manifest that has the key was written by it.
        return import_module("doge.rendering.geometry").Geometry.from_json(entry["geometry"])
    side = int(entry["size"])
    return Stretch((int(size[0]), int(size[1])), (side, side))


def load_mask(path) -> Image.Image:
    """A label image as it is stored (palette and grey values are the labels), upright."""
    try:
        with Image.open(path) as opened:
            opened.load()
            return ImageOps.exif_transpose(opened)
    except (OSError, ValueError) as exc:
        raise DogeError(f"label image {path} could not be read ({exc}); replace it") from exc


def map_mask(geometry, mask: Image.Image) -> Image.Image:
    """A label image laid out as the output: nearest neighbour, so no label value is invented."""
    return geometry.apply(mask, resample=Image.Resampling.NEAREST, fill=0)


# -- COCO --------------------------------------------------------------------------------------


def _mask_utils():
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


def map_annotation(ann: dict, geometry, source_wh: tuple[int, int]) -> dict | None:
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
        sw, sh = source_wh
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
    if ann.get("bbox"):
        mapped_box = geometry.map_box(ann["bbox"])
        box = mapped_box if mapped_box is not None else box
    mapped["bbox"] = [round(float(v), 2) for v in box]
    return mapped


def _box_of(polygons: list[list[float]]) -> tuple[float, float, float, float]:
    points = np.concatenate([np.asarray(p).reshape(-1, 2) for p in polygons])
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
