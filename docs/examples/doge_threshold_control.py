"""A control plugin with its own ControlNet: black-and-white threshold maps.

``threshold`` lays each source out as its output is (``geometry.apply``, so ``--fit`` holds),
turns it grey and makes every pixel at or above ``level`` white and the rest black. A ControlNet
trained on such maps (yours, on the hub or in a folder) follows them; it is named by
``default_controlnet`` and replaced by ``--controlnet threshold=ID_OR_DIR``::

    doge render --gap 'real->painting' --src data/real --out out/bw \\
        --control threshold --control-option threshold.level=100 --controlnet threshold=./my-threshold-net
"""

from __future__ import annotations

from PIL import Image

from doge.plugin import hookimpl


class ThresholdControl:
    name = "threshold"
    uses_controlnet = True
    default_controlnet: str | None = "my-lab/controlnet-sd21-threshold"  # an illustration: pass yours

    def __init__(self, control_dir=None, device="cpu", level: int = 128):
        # level is an option: `--control-option threshold.level=100` is parsed to an int, as its default
        self.level = level

    def make(self, image: Image.Image, size, source_path, geometry) -> Image.Image:
        """The map for one source, at the output's ``size``, laid out over it as the output is."""
        grey = geometry.apply(image, Image.Resampling.BICUBIC).convert("L")
        return grey.point(lambda v: 255 if v >= self.level else 0).convert("RGB")

    def resolve_controlnet(self, override=None):
        return override or self.default_controlnet

    def describe(self) -> dict:
        """What went into the maps, recorded in every manifest line."""
        return {"name": self.name, "options": {"level": self.level}}

    def is_empty(self, control_map: Image.Image) -> bool:
        """An all-black or all-white map holds no layout: render warns and marks the manifest."""
        low, high = control_map.convert("L").getextrema()
        return low == high

    def empty_advice(self) -> str:
        return "change threshold.level so that the map has both black and white"


@hookimpl
def register_controls(register):
    register("threshold", ThresholdControl)
