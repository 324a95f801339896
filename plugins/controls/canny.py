"""Canny edges of the source image, laid out like the output.

Two constructions (option ``maps``):

- ``paper``: the DoGE paper's map. The source is brought to the CLIP view's scale (shortest side
  224 px, bicubic; with ``--fit crop`` exactly the 224-px centre crop CLIP sees), min–max
  stretched, run through colour Canny at ``low``/``high`` (the paper's 100/800), and the 1-px
  edges are upsampled to the output with Lanczos, which makes them about ``side/224`` px wide.
- ``auto`` (the default): the map is made at the output's resolution, so thin structures stay
  where they are, but sees what the paper's sees: the min–max stretched image is blurred by
  about the paper's downsampling (sigma 0.6 · side/224), Canny's thresholds ``low``/``high``
  (given at the 224-px scale, as the paper's are) shrink with the resolution as gradients do
  (× 0.7 · 224/side), and the lines are thickened to ``side/224`` px. On six scikit-image photos
  its edge pixel count is 0.8–1.3× the paper construction's (``benchmarks/edge_density.py``),
  where Canny at 100/800 on the grey 768-px image found 0–68%.

``side`` is the source's shortest side once laid out (the output's for ``keep`` and ``crop``).
Letterbox bars (``--fit pad``) stay black: edges are found on the picture only.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from doge.plugin import Control, DogeError, Geometry, gray_to_rgb, to_uint8

CLIP_SIDE = 224  # the side of the CLIP view the paper's maps were made at
MAPS = ("auto", "paper")
_BLUR = 0.6  # auto: Gaussian sigma per unit of scale (output px per CLIP px)
_THRESHOLD_FACTOR = 0.7  # auto: the thresholds' share left after that blur, measured on photos
EMPTY_FRACTION = 0.002  # a map with fewer edge pixels than this share controls (almost) nothing


class CannyControl(Control):
    name = "canny"
    default_controlnet = "thibaud/controlnet-sd21-canny-diffusers"
    # The paper's thresholds, at the 224-px scale; gradients of 8-bit images reach past 255, so high may too.
    defaults: dict[str, Any] = {"low": 100, "high": 800, "maps": "auto"}
    empty_hint = "lower --canny-low/--canny-high (e.g. 50/200) or use --control depth"

    def __init__(self, control_dir=None, device="cpu", **options):
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
        width, height = geometry.source_size
        box = geometry.crop or (0, 0, width, height)
        left, top, right, bottom = geometry.pad or (0, 0, 0, 0)
        out_w, out_h = geometry.output_size
        picture = (out_w - left - right, out_h - top - bottom)
        if self.options["maps"] == "paper" and geometry.fit == "crop":
            edges = self._paper_edges(clip_view(image), picture)
        else:
            edges = self._edges(image, box, picture)
        if geometry.pad is None:
            return edges
        canvas = Image.new("RGB", geometry.output_size, 0)
        canvas.paste(edges, (left, top))
        return canvas

    def compute(self, image: Image.Image, size: tuple[int, int]) -> Image.Image:
        """Edges of ``image`` stretched over ``size`` (no geometry given)."""
        return self._edges(image, (0, 0, image.width, image.height), size)

    def _edges(self, image: Image.Image, box: tuple[int, int, int, int], size: tuple[int, int]) -> Image.Image:
        """The edge map of ``image``'s ``box`` resized to ``size`` (one resampling from the source)."""
        import cv2
        import numpy as np

        low, high = float(self.options["low"]), float(self.options["high"])
        scale = min(size) / CLIP_SIDE
        if self.options["maps"] == "paper":
            ratio = CLIP_SIDE / min(size)
            small = (max(1, round(size[0] * ratio)), max(1, round(size[1] * ratio)))
            return self._paper_edges(image.resize(small, Image.Resampling.BICUBIC, box=box), size)
        view = to_uint8(np.asarray(image.resize(size, Image.Resampling.BICUBIC, box=box), dtype=np.float64))
        scale = max(1.0, scale)  # maps smaller than the CLIP view are treated as at its scale
        view = cv2.GaussianBlur(view, (0, 0), _BLUR * scale)
        shrink = _THRESHOLD_FACTOR / scale
        edges = cv2.Canny(np.ascontiguousarray(view), low * shrink, high * shrink)
        width = round(scale)
        if width > 1:
            edges = cv2.dilate(edges, np.ones((width, width), np.uint8))
        return gray_to_rgb(edges)

    def _paper_edges(self, view: Image.Image, size: tuple[int, int]) -> Image.Image:
        """The paper's map from its CLIP-scale ``view``: stretched, colour Canny, Lanczos up to ``size``."""
        import cv2
        import numpy as np

        stretched = to_uint8(np.asarray(view, dtype=np.float64))
        edges = cv2.Canny(np.ascontiguousarray(stretched), float(self.options["low"]), float(self.options["high"]))
        return gray_to_rgb(edges).resize(size, Image.Resampling.LANCZOS)

    def is_empty(self, made: Image.Image) -> bool:
        """Almost no edges (under 0.2% of the pixels): the map would not control the layout."""
        import numpy as np

        return float((np.asarray(made.convert("L")) > 127).mean()) < EMPTY_FRACTION


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
