"""Built-in control modes for render, registered through the same hook as third-party ones.

Importing this package stays cheap (no torch, transformers or cv2): the plugin manager loads
it even for ``doge --help``; the heavy imports happen inside the controls' methods.
"""

from doge.plugin import Control, hookimpl
from doge.plugins.controls.canny import CannyControl
from doge.plugins.controls.depth import DepthControl
from doge.plugins.controls.hed import HedControl
from doge.plugins.controls.none import NoControl
from doge.plugins.controls.seg import SegControl

__all__ = ["CannyControl", "Control", "DepthControl", "HedControl", "NoControl", "SegControl", "register_controls"]


@hookimpl
def register_controls(register):
    register("canny", CannyControl)
    register("depth", DepthControl)
    register("seg", SegControl)
    register("hed", HedControl)
    register("none", NoControl)
