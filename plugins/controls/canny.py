"""Canny edges of the source image, laid out like the output.

Two constructions (option ``maps``):

- ``paper``: the DoGE paper's map, as its ``generate.py`` makes it. The picture at the CLIP
  view's scale (with ``--fit crop`` exactly the 224-px centre crop CLIP's processor makes:
  shortest side 224 bicubic, centre crop) is rescaled and normalised per channel with CLIP's
  mean and std, cast to float16, min–max stretched over all three channels to 0..255 in float16
  arithmetic and truncated to uint8 (``astype``); colour Canny at ``low``/``high`` (the paper's
  README: 100/800) finds 1-px edges, and the 224-px map is upsampled to the output with Lanczos
  as the paper's pipeline does (lines about ``side/224`` px wide). Pixel for pixel the paper's
  map at ``--fit crop``; with ``keep``/``pad`` the same arithmetic on the laid-out picture.
- ``auto`` (the default): the paper's map decides *which* edges exist, the output's resolution
  *where* they lie. Canny runs on the full-resolution picture (same stretch, blurred by about the
  paper's downsampling, sigma 0.6 · side/224) at thresholds scaled to that resolution
  (× 0.35 · 224/side, half of what a size-only rule needs), and only edges within
  ``side/224`` px of the paper's own (upsampled) edges are kept, thickened to ``side/224`` px.
  Where the paper's map is empty, so is this one; its edge count stays within 0.5–2× of the
  paper's at 512–1024 px on photos, textures, text, line art and star fields
  (``benchmarks/edge_density.py``).

``side`` is the picture's shortest side once laid out (the output's for ``keep`` and ``crop``).
Letterbox bars (``--fit pad``) stay black: edges are found on the picture only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from doge.plugin import Control, DogeError, Geometry, gray_to_rgb, letterbox

CLIP_SIDE = 224  # the side of the CLIP view the paper's maps were made at
# CLIP's per-channel normalisation (OPENAI_CLIP_MEAN / _STD; SD 2.1 unCLIP's feature extractor's).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MAPS = ("auto", "paper")
_BLUR = 0.6  # auto: Gaussian sigma per unit of scale (output px per CLIP px)
_THRESHOLD_FACTOR = 0.35  # auto: full-resolution thresholds per unit of 224/side
_BAND = (0.67, 1.5)  # auto: edge pixels as a share of the paper map's that need no threshold search
_BAND_STEPS = 8  # auto: geometric bisection steps of that search
EMPTY_FRACTION = 0.002  # a map with fewer edge pixels than this share controls (almost) nothing


class CannyControl(Control):
    name = "canny"
    default_controlnet = "thibaud/controlnet-sd21-canny-diffusers"
    # The paper's thresholds, at the 224-px scale; gradients of 8-bit images reach past 255, so high may too.
    defaults: dict[str, Any] = {"low": 100, "high": 800, "maps": "auto"}
    empty_hint = "lower --canny-low/--canny-high (e.g. 50/200) or use --control depth"

    def __init__(self, control_dir: str | Path | None = None, device: str = "cpu", **options: Any) -> None:
        super().__init__(control_dir=control_dir, device=device, **options)
        low, high = self.options["low"], self.options["high"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
            raise DogeError(f"--canny-low and --canny-high must be numbers, got {low!r} and {high!r}")
        if low < 0 or high < low:
            raise DogeError(f"canny thresholds need 0 <= --canny-low <= --canny-high, got {low} and {high}")
        if self.options["maps"] not in MAPS:
            raise DogeError(f"--canny-maps {self.options['maps']!r}: use auto or paper")

    def make(self, image, size, source_path, geometry: Geometry | None = None):
        if self.control_dir is not None or geometry is None:
            return super().make(image, size, source_path, geometry)
        image = image.convert("RGB")
        box, picture = geometry.box(), geometry.picture_size()
        return letterbox(self._edges(image, box, picture, paper_view(image, geometry)), geometry)

    def compute(self, image: Image.Image, size: tuple[int, int]) -> Image.Image:
        """Edges of ``image`` stretched over ``size`` (no geometry given)."""
        box = (0, 0, image.width, image.height)
        return self._edges(image, box, size, clip_scale_view(image, box, size))

    def _edges(
        self, image: Image.Image, box: tuple[int, int, int, int], size: tuple[int, int], view: Image.Image
    ) -> Image.Image:
        """The map of ``image``'s ``box`` at ``size``; ``view`` is that picture at the CLIP scale."""
        import cv2
        import numpy as np

        paper = self._paper_edges(view, size)  # which edges exist
        if self.options["maps"] == "paper":
            return paper
        # A map smaller than the CLIP view has the paper's lines fainter than 1 px: any trace counts.
        near = np.asarray(paper)[..., 0] > (127 if min(size) >= CLIP_SIDE else 0)
        if not near.any():  # the paper's map is empty: nothing to place
            return paper
        target = float(near.sum())
        scale = max(1.0, min(size) / CLIP_SIDE)  # maps smaller than the CLIP view are treated as at its scale
        reach = 2 * round(scale) + 1
        near = cv2.dilate(near.astype(np.uint8), np.ones((reach, reach), np.uint8)) > 0
        full = paper_stretch(image.resize(size, Image.Resampling.BICUBIC, box=box))
        full = cv2.GaussianBlur(full, (0, 0), _BLUR * scale)
        width = np.ones((round(scale), round(scale)), np.uint8)
        low, high = float(self.options["low"]), float(self.options["high"])

        def placed(factor: float):
            found = cv2.Canny(np.ascontiguousarray(full), low * factor, high * factor)
            found[~near] = 0
            found = cv2.dilate(found, width)
            return found, float((found > 127).sum()) / target

        # Thresholds scale with the resolution (gradients of a blurred edge fall as 1/scale); an
        # image whose count still strays past _BAND (fine textures, noise) has its thresholds
        # moved, geometrically, until it does not.
        factor = _THRESHOLD_FACTOR / scale
        edges, ratio = placed(factor)
        if not _BAND[0] <= ratio <= _BAND[1]:
            lo, hi = (factor, factor * 16) if ratio > _BAND[1] else (factor / 16, factor)
            for _ in range(_BAND_STEPS):
                mid = (lo * hi) ** 0.5
                edges, ratio = placed(mid)
                if _BAND[0] <= ratio <= _BAND[1]:
                    break
                lo, hi = (mid, hi) if ratio > _BAND[1] else (lo, mid)
        return gray_to_rgb(edges)

    def _paper_edges(self, view: Image.Image, size: tuple[int, int]) -> Image.Image:
        """The paper's map from its CLIP-scale ``view``: normalised stretch, colour Canny, Lanczos up to ``size``."""
        import cv2

        low, high = float(self.options["low"]), float(self.options["high"])
        edges = cv2.Canny(paper_stretch(view), low, high)
        return gray_to_rgb(edges).resize(size, Image.Resampling.LANCZOS)

    def is_empty(self, made: Image.Image) -> bool:
        """Almost no edges (under 0.2% of the pixels): the map would not control the layout."""
        import numpy as np

        return float((np.asarray(made.convert("L")) > 127).mean()) < EMPTY_FRACTION


def paper_stretch(view: Image.Image):
    """generate.py's 8-bit image for Canny: CLIP's rescaled, normalised pixels, as float16,
    min–max stretched over all channels to 0..255 in float16 arithmetic, truncated to uint8.

    The arithmetic is the paper's step for step (transformers' rescale in float64 cast to float32,
    normalisation in float32, numpy's float16 operations), so the bytes are the paper's. A flat
    picture (the paper divides by zero there) is all zeros.
    """
    import numpy as np

    rescaled = (np.asarray(view.convert("RGB")).astype(np.float64) * (1 / 255)).astype(np.float32)
    normalised = (rescaled - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(CLIP_STD, np.float32)
    half = normalised.astype(np.float16)
    low, high = half.min(), half.max()
    if not high > low:
        return np.zeros(half.shape, dtype=np.uint8)
    return np.ascontiguousarray(((half - low) / (high - low) * 255).astype(np.uint8))


def paper_view(image: Image.Image, geometry: Geometry) -> Image.Image:
    """The picture the paper's maps are made from: CLIP's own 224-px centre crop for ``--fit crop``
    (the paper's layout), else the laid-out picture at the CLIP scale."""
    if geometry.fit == "crop":
        return clip_view(image)
    return clip_scale_view(image, geometry.box(), geometry.picture_size())


def clip_scale_view(image: Image.Image, box: tuple[int, int, int, int], size: tuple[int, int]) -> Image.Image:
    """``image``'s ``box``, laid out at ``size``, brought to the CLIP scale (shortest side 224, bicubic)."""
    ratio = CLIP_SIDE / min(size)
    small = (max(1, round(size[0] * ratio)), max(1, round(size[1] * ratio)))
    return image.resize(small, Image.Resampling.BICUBIC, box=box)


def clip_view(image: Image.Image) -> Image.Image:
    """The 224-px centre crop CLIP's processor makes: shortest side to 224 (bicubic), centre crop.

    Rounded as transformers' CLIP processor rounds (long side truncated, offsets floored), so the
    paper's maps are made from the very pixels its embeddings were.
    """
    width, height = image.size
    short = min(width, height)
    resized = image.resize(
        (
            CLIP_SIDE if width == short else int(CLIP_SIDE * width / short),
            CLIP_SIDE if height == short else int(CLIP_SIDE * height / short),
        ),
        Image.Resampling.BICUBIC,
    )
    left, top = (resized.width - CLIP_SIDE) // 2, (resized.height - CLIP_SIDE) // 2
    return resized.crop((left, top, left + CLIP_SIDE, top + CLIP_SIDE))
