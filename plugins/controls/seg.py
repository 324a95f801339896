"""Segmentation maps, read from --control-dir (there is no built-in segmenter)."""

from __future__ import annotations

from PIL import Image

from doge.errors import DogeError
from doge.plugins.controls.base import Control


class SegControl(Control):
    name = "seg"
    default_controlnet = None  # no SD 2.1 seg ControlNet is standard: render asks for --controlnet
    defaults = {}
    # Labels must stay crisp: interpolating would invent colours that are no class.
    map_resample = Image.Resampling.NEAREST
    stretch_wide_maps = False

    def __init__(self, control_dir=None, device="cpu", **options):
        if control_dir is None:
            raise DogeError(
                "the seg control reads precomputed segmentation maps: pass --control-dir DIR with one map "
                "per source image (same file stem), and --controlnet with an SD 2.1 segmentation ControlNet"
            )
        super().__init__(control_dir=control_dir, device=device, **options)

    def compute(self, image, size):
        # Unreachable: __init__ insists on control_dir, so make() always reads a map.
        raise DogeError("the seg control needs --control-dir")
