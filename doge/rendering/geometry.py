"""How an output image lies over its source: ``--fit keep | crop | pad``.

A :class:`Geometry` says how a source of ``source_size`` becomes an output (and every control map)
of ``output_size``: scaled whole (``keep``), centre-cropped (``crop``, the paper's recipe, the same
square the CLIP processor sees) or scaled whole and letterboxed (``pad``). Each manifest line stores
it, so a point, a box or a mask drawn on a source carries over to the generated image by arithmetic.

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


@dataclass(frozen=True)
class Geometry:
    fit: str  # "keep" | "crop" | "pad"
    source_size: tuple[int, int]  # (w, h) of the decoded, EXIF-transposed source
    output_size: tuple[int, int]  # (w, h) of the generated image and of every control map
    scale: tuple[float, float]  # (sx, sy): output px per source px (equal up to rounding)
    crop: tuple[int, int, int, int] | None = None  # fit=crop: (left, top, right, bottom) in source px
    pad: tuple[int, int, int, int] | None = None  # fit=pad: (left, top, right, bottom) in output px

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
        if self.fit == "crop":
            assert self.crop is not None
            left, top, right, bottom = self.crop
            return image.resize(self.output_size, resample, box=(left, top, right, bottom))
        if self.fit == "pad":
            assert self.pad is not None
            left, top, right, bottom = self.pad
            width, height = self.output_size
            inner = image.resize((width - left - right, height - top - bottom), resample)
            canvas = Image.new(image.mode, self.output_size, fill)
            palette = image.getpalette() if image.mode == "P" else None
            if palette is not None:
                canvas.putpalette(palette)
            canvas.paste(inner, (left, top))
            return canvas
        return image.resize(self.output_size, resample)


def fit_geometry(width: int, height: int, size: int, fit: str) -> Geometry:
    """The geometry of a ``width``×``height`` source rendered at ``size`` with ``fit``.

    keep: the aspect ratio kept at about ``size``×``size`` pixels, each side a multiple of 64
    (at least 64); crop: shortest side to ``size``, centre crop to ``size``×``size`` (the paper);
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
        ratio = (width / height) ** 0.5
        out_w = max(_STEP, round(size * ratio / _STEP) * _STEP)
        out_h = max(_STEP, round(size / ratio / _STEP) * _STEP)
        return Geometry("keep", (width, height), (out_w, out_h), (out_w / width, out_h / height))
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
