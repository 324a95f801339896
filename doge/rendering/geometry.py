"""How an output image lies over its source: ``--fit keep | crop | pad``.

A :class:`Geometry` says how a source of ``source_size`` becomes an output (and every control map)
of ``output_size``: its aspect kept at sides that are multiples of 64 (``keep``: scaled by one
factor, the small remainder centre-cropped, or letterboxed when it is not small), centre-cropped to
a square (``crop``, the paper's recipe, the same square the CLIP processor sees) or scaled whole
and letterboxed (``pad``). In every case the source's ``crop`` box (or all of it) is scaled to the
output less its ``pad`` bars. Each manifest line stores it, so a point, a box or a mask drawn on a
source carries over to the generated image by arithmetic.

Pure Python, PIL and numpy: no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image

from doge.errors import DogeError

FITS = ("keep", "crop", "pad")

_STEP = 64  # keep: each output side is a multiple of this (what SD's UNet and VAE divide cleanly)
# keep: the longest side may be at most this many times the shortest. Beyond it the short side is
# clamped at one step while the long one keeps growing (1x10000 at 768 px made a 64x76800 output).
MAX_KEEP_ASPECT = 16
# keep: the remainder cut away (a share of the source's area) beyond which it is letterboxed instead.
KEEP_CROP_LIMIT = 0.125
_NEAR_ENOUGH = 0.05  # keep: a size this close (log aspect + area cost) ends the search in the tight band


@dataclass(frozen=True)
class Geometry:
    fit: str  # "keep" | "crop" | "pad"
    source_size: tuple[int, int]  # (w, h) of the decoded, EXIF-transposed source
    output_size: tuple[int, int]  # (w, h) of the generated image and of every control map
    scale: tuple[float, float]  # (sx, sy): output px per source px (equal within 1%, rounding only)
    crop: tuple[int, int, int, int] | None = None  # crop, keep: (left, top, right, bottom) in source px
    pad: tuple[int, int, int, int] | None = None  # pad, keep: (left, top, right, bottom) in output px

    def to_json(self) -> dict[str, Any]:
        """What each manifest line stores under ``"geometry"``."""
        return {
            "fit": self.fit,
            "source_size": list(self.source_size),
            "output_size": list(self.output_size),
            "scale": list(self.scale),
            "crop": list(self.crop) if self.crop is not None else None,
            "pad": list(self.pad) if self.pad is not None else None,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Geometry:
        def ints(key: str) -> Any:
            value = d.get(key)
            return tuple(int(v) for v in value) if value is not None else None

        return cls(
            fit=str(d["fit"]),
            source_size=ints("source_size"),
            output_size=ints("output_size"),
            scale=tuple(float(v) for v in d["scale"]),  # type: ignore[arg-type]
            crop=ints("crop"),
            pad=ints("pad"),
        )

    def _offset(self) -> tuple[float, float, float, float]:
        """(source x0, source y0, output x0, output y0): output = (source - s0) * scale + o0."""
        sx0, sy0 = (self.crop[0], self.crop[1]) if self.crop is not None else (0, 0)
        ox0, oy0 = (self.pad[0], self.pad[1]) if self.pad is not None else (0, 0)
        return float(sx0), float(sy0), float(ox0), float(oy0)

    def map_points(self, xy) -> Any:
        """(N, 2) points in source px → output px (floats; not clipped)."""
        import numpy as np

        points = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        sx0, sy0, ox0, oy0 = self._offset()
        out = np.empty_like(points)
        out[:, 0] = (points[:, 0] - sx0) * self.scale[0] + ox0
        out[:, 1] = (points[:, 1] - sy0) * self.scale[1] + oy0
        return out

    def map_box(self, box) -> tuple[float, float, float, float] | None:
        """A COCO box (x, y, w, h) in source px → (x, y, w, h) in output px, clipped to the output.

        None when nothing of the box is left inside the output (cropped away).
        """
        x, y, w, h = (float(v) for v in box)
        (x0, y0), (x1, y1) = self.map_points([(x, y), (x + w, y + h)])
        width, height = self.output_size
        x0, x1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
        y0, y1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
        if x1 - x0 <= 0 or y1 - y0 <= 0:
            return None
        return (x0, y0, x1 - x0, y1 - y0)

    def apply(
        self, image: Image.Image, resample: Image.Resampling = Image.Resampling.LANCZOS, fill: Any = 0
    ) -> Image.Image:
        """``image`` (the source, a control map, or a label mask with ``resample=NEAREST``) laid
        out exactly as the output: cropped, or scaled, or letterboxed with ``fill``.

        An image whose size is not the source's (a map saved at another resolution) is first
        stretched over the source's frame, so its pixels line up with the source's.
        """
        if image.size != self.source_size:
            image = image.resize(self.source_size, resample)
        left, top, right, bottom = self.pad or (0, 0, 0, 0)
        width, height = self.output_size
        picture = image.resize((width - left - right, height - top - bottom), resample, box=self.box())
        if self.pad is None:
            return picture
        canvas = Image.new(image.mode, self.output_size, fill)
        palette = image.getpalette() if image.mode == "P" else None
        if palette is not None:
            canvas.putpalette(palette)
        canvas.paste(picture, (left, top))
        return canvas

    def box(self) -> tuple[int, int, int, int]:
        """The part of the source the output shows: ``crop``, else all of it."""
        return self.crop or (0, 0, *self.source_size)

    def picture_size(self) -> tuple[int, int]:
        """The output's size less its letterbox bars: where the source's box lands."""
        left, top, right, bottom = self.pad or (0, 0, 0, 0)
        return self.output_size[0] - left - right, self.output_size[1] - top - bottom


def fit_geometry(width: int, height: int, size: int, fit: str) -> Geometry:
    """The geometry of a ``width``×``height`` source rendered at ``size`` with ``fit``.

    keep: about ``size``×``size`` pixels, each side a multiple of 64, the size closest to the
    source's aspect; the source scaled by one factor and the small remainder centre-cropped (up to
    ``KEEP_CROP_LIMIT`` of its area), else letterboxed, so the aspect holds within 1%;
    crop: shortest side to ``size``, centre crop to ``size``×``size`` (the paper);
    pad: longest side to ``size``, letterboxed to ``size``×``size``.

    keep refuses a source longer than 1:``MAX_KEEP_ASPECT`` (a DogeError naming --fit pad or crop).
    """
    if fit not in FITS:
        raise DogeError(f"--fit {fit!r}: use one of {', '.join(FITS)}")
    if width < 1 or height < 1:
        raise DogeError(f"an image of {width}x{height} pixels cannot be rendered")
    if fit == "keep":
        if max(width, height) > MAX_KEEP_ASPECT * min(width, height):
            raise DogeError(
                f"a {width}x{height} source is longer than 1:{MAX_KEEP_ASPECT}, too thin for --fit keep; "
                "use --fit pad (letterboxed) or --fit crop (its centre square)"
            )
        return _keep(width, height, *_keep_size(width / height, size))
    if fit == "crop":
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        s = size / side
        return Geometry("crop", (width, height), (size, size), (s, s), crop=(left, top, left + side, top + side))
    longest = max(width, height)
    inner_w = max(1, round(width * size / longest))
    inner_h = max(1, round(height * size / longest))
    left, top = (size - inner_w) // 2, (size - inner_h) // 2
    pad = (left, top, size - inner_w - left, size - inner_h - top)
    return Geometry("pad", (width, height), (size, size), (inner_w / width, inner_h / height), pad=pad)


def _keep_size(aspect: float, size: int) -> tuple[int, int]:
    """The output size for ``keep``: sides multiples of ``_STEP``, area near ``size``², aspect nearest ``aspect``.

    Among sizes whose area is within 0.8–1.25× of ``size``² (0.25–4× when none of those is within
    about 5% of the aspect, as at 64 px), the one whose aspect is closest wins; a quarter of the
    area's log-distance from ``size``² breaks near-ties, so 300×600 at 512 becomes 384×768 (exactly 1:2)
    rather than 320×640 or 384×704.
    """
    import math

    limit = 4 * size
    best: tuple[float, int, int] | None = None
    for low, high in ((0.8, 1.25), (0.25, 4.0)):
        for out_w in range(_STEP, max(limit, _STEP) + 1, _STEP):
            ideal = out_w / aspect / _STEP
            for steps in sorted({math.floor(ideal), math.ceil(ideal)}):
                out_h = min(max(1, steps) * _STEP, max(limit, _STEP))
                area = out_w * out_h / (size * size)
                if not low <= area <= high:
                    continue
                cost = abs(math.log(out_w / out_h / aspect)) + 0.25 * abs(math.log(area))
                if best is None or cost < best[0]:
                    best = (cost, out_w, out_h)
        if best is not None and best[0] <= _NEAR_ENOUGH:
            break
    return (best[1], best[2]) if best is not None else (_STEP, _STEP)


def _keep(width: int, height: int, out_w: int, out_h: int) -> Geometry:
    """A ``width``×``height`` source on an ``out_w``×``out_h`` output at one scale: the remainder
    centre-cropped when small, else letterboxed."""
    cover = max(out_w / width, out_h / height)
    crop_w, crop_h = min(width, round(out_w / cover)), min(height, round(out_h / cover))
    kept = abs(crop_w * out_h / (crop_h * out_w) - 1) <= 0.005  # the crop's own rounding keeps the aspect
    if kept and 1 - crop_w * crop_h / (width * height) <= KEEP_CROP_LIMIT:
        left, top = (width - crop_w) // 2, (height - crop_h) // 2
        crop = (left, top, left + crop_w, top + crop_h) if (crop_w, crop_h) != (width, height) else None
        return Geometry("keep", (width, height), (out_w, out_h), (out_w / crop_w, out_h / crop_h), crop=crop)
    fit = min(out_w / width, out_h / height)
    inner_w, inner_h = min(out_w, max(1, round(width * fit))), min(out_h, max(1, round(height * fit)))
    left, top = (out_w - inner_w) // 2, (out_h - inner_h) // 2
    pad = (left, top, out_w - inner_w - left, out_h - inner_h - top)
    return Geometry("keep", (width, height), (out_w, out_h), (inner_w / width, inner_h / height), pad=pad)
