"""No control: render runs plain Stable unCLIP without a ControlNet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from doge.plugin import Control, DogeError, Geometry


class NoControl(Control):
    name = "none"
    default_controlnet = None
    uses_controlnet = False
    defaults = {}

    def __init__(self, control_dir: str | Path | None = None, device: str = "cpu", **options: Any) -> None:
        if control_dir is not None:
            raise DogeError(
                "--control none uses no control maps; drop --control-dir or pick --control canny, depth or seg"
            )
        super().__init__(control_dir=None, device=device, **options)

    def make(
        self, image: Image.Image, size: tuple[int, int], source_path: str | Path, geometry: Geometry | None = None
    ) -> None:
        return None

    def compute(self, image: Image.Image, size: tuple[int, int]) -> None:
        return None
