"""No control: render runs plain Stable unCLIP without a ControlNet."""

from __future__ import annotations

from doge.plugin import Control, DogeError


class NoControl(Control):
    name = "none"
    default_controlnet = None
    uses_controlnet = False
    defaults = {}

    def __init__(self, control_dir=None, device="cpu", **options):
        if control_dir is not None:
            raise DogeError(
                "--control none uses no control maps; drop --control-dir or pick --control canny, depth or seg"
            )
        super().__init__(control_dir=None, device=device, **options)

    def make(self, image, size, source_path, geometry=None):
        return None

    def compute(self, image, size):
        return None
