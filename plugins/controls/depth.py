"""Depth maps from a transformers depth-estimation model (MiDaS DPT by default).

Polarity: the SD 2.1 depth ControlNets were trained on MiDaS output, which is inverse depth:
near is bright, far is dark. Maps from --control-dir must be the same way round; datasets that
store distance (near = dark: KITTI's depth maps, SYNTHIA's Depth, renderers' z-buffers)
need ``invert`` (``--depth-invert``), which turns the stretched 0..255 map upside down.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageOps

from doge.plugin import Control, DogeError, Geometry, first_line, gray_to_rgb, pick_device, to_uint8

if TYPE_CHECKING:  # transformers loads with the depth model, on first use
    from transformers import PreTrainedModel
    from transformers.image_processing_utils import BaseImageProcessor

# The DPT model the SD 2.1 depth ControlNets were trained with.
DEFAULT_DEPTH_MODEL = "Intel/dpt-hybrid-midas"


class DepthControl(Control):
    name = "depth"
    default_controlnet = "thibaud/controlnet-sd21-depth-diffusers"
    # invert: the maps store distance (near = dark); flip them to the near = bright that the ControlNet expects.
    defaults = {"model": DEFAULT_DEPTH_MODEL, "invert": False}

    def __init__(self, control_dir: str | Path | None = None, device: str = "cpu", **options: Any) -> None:
        super().__init__(control_dir=control_dir, device=device, **options)
        if self.options["invert"] and self.control_dir is None:
            raise DogeError(
                "--depth-invert flips depth maps read from --control-dir; the estimated ones are already "
                "near = bright, as the depth ControlNet expects: drop --depth-invert or pass --control-dir"
            )
        self._model: PreTrainedModel | None = None
        self._processor: BaseImageProcessor | None = None

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        if self.control_dir is None:
            info["model"] = str(self.options["model"])
        return info

    def make(
        self, image: Image.Image, size: tuple[int, int], source_path: str | Path, geometry: Geometry | None = None
    ) -> Image.Image | None:
        made = super().make(image, size, source_path, geometry)
        if made is None or not self.options["invert"]:
            return made
        return ImageOps.invert(made.convert("RGB"))

    def compute(self, image: Image.Image, size: tuple[int, int]) -> Image.Image:
        import torch

        model, processor = self._load()
        resized = image.resize((size[0], size[1]), Image.Resampling.BICUBIC)
        inputs = processor(images=resized, return_tensors="pt")
        pixels = inputs["pixel_values"].to(model.device, model.dtype)
        with torch.inference_mode():
            predicted = model(pixel_values=pixels).predicted_depth
        width, height = size
        depth = torch.nn.functional.interpolate(
            predicted.float().unsqueeze(1), size=(height, width), mode="bicubic", align_corners=False
        )[0, 0]
        # MiDaS predicts inverse depth, so near is bright: what the depth ControlNets expect.
        return gray_to_rgb(to_uint8(depth.cpu().numpy()))

    def _load(self) -> tuple[PreTrainedModel, BaseImageProcessor]:
        if self._model is None or self._processor is None:  # loaded together
            self._model, self._processor = load_depth_model(str(self.options["model"]), self.device)
        return self._model, self._processor


def load_depth_model(model_id: str, device: str = "cpu"):
    """Load a depth-estimation model and its image processor, or raise a one-line DogeError."""
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    device = pick_device(device)
    local = Path(model_id).expanduser()
    source = str(local) if local.exists() else model_id
    try:
        processor = AutoImageProcessor.from_pretrained(source)
        model = AutoModelForDepthEstimation.from_pretrained(source)
    except (OSError, ValueError) as exc:  # ValueError: an unknown config, or a path that is no hub id
        raise _load_error(model_id, exc) from exc
    # fp32 even on CUDA: DPT-hybrid's weight-standardised convs are fragile in fp16, and it is small.
    return model.to(device).eval(), processor


def _load_error(model_id: str, exc: Exception) -> DogeError:
    if Path(model_id).expanduser().is_dir():
        return DogeError(
            f"{model_id} is not a loadable depth-estimation model folder ({first_line(exc)}); "
            "pass --depth-model with a folder saved by transformers' save_pretrained"
        )
    return DogeError(
        f"depth model {model_id} not found locally and no hub access: pass --depth-model DIR "
        "or use --control-dir with precomputed depth maps"
    )
