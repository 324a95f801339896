"""Canny edges of the source image, at the output size."""

from __future__ import annotations

from PIL import Image

from doge.errors import DogeError
from doge.plugins.controls.base import Control, gray_to_rgb


class CannyControl(Control):
    name = "canny"
    default_controlnet = "thibaud/controlnet-sd21-canny-diffusers"
    # The paper's thresholds; gradients of 8-bit images reach past 255, so high may too.
    defaults = {"low": 100, "high": 800}

    def __init__(self, control_dir=None, device="cpu", **options):
        super().__init__(control_dir=control_dir, device=device, **options)
        low, high = self.options["low"], self.options["high"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
            raise DogeError(f"--canny-low and --canny-high must be numbers, got {low!r} and {high!r}")
        if low < 0 or high < low:
            raise DogeError(f"canny thresholds need 0 <= --canny-low <= --canny-high, got {low} and {high}")

    def compute(self, image: Image.Image, size: tuple[int, int]) -> Image.Image:
        import cv2
        import numpy as np

        gray = np.asarray(image.resize((size[0], size[1]), Image.Resampling.BICUBIC).convert("L"))
        edges = cv2.Canny(np.ascontiguousarray(gray), float(self.options["low"]), float(self.options["high"]))
        return gray_to_rgb(edges)
