"""Depth maps from a transformers depth-estimation model (MiDaS DPT by default).

Polarity: the SD 2.1 depth ControlNets were trained on MiDaS output, which is inverse depth:
near is bright, far is dark. Maps from --control-dir must be the same way round; datasets that
store distance (near = dark: KITTI's depth maps, SYNTHIA's Depth, renderers' z-buffers)
need ``invert`` (``--depth-invert``), which turns the stretched 0..255 map upside down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from doge.errors import DogeError
from doge.plugins.controls.base import Control, gray_to_rgb, to_uint8

# The DPT model the SD 2.1 depth ControlNets were trained with.
DEFAULT_DEPTH_MODEL = "Intel/dpt-hybrid-midas"


class DepthControl(Control):
    name = "depth"
    default_controlnet = "thibaud/controlnet-sd21-depth-diffusers"
    # invert: the maps store distance (near = dark); flip them to the near = bright that the ControlNet expects.
    defaults = {"model": DEFAULT_DEPTH_MODEL, "invert": False}

    def __init__(self, control_dir=None, device="cpu", **options):
        super().__init__(control_dir=control_dir, device=device, **options)
        if self.options["invert"] and self.control_dir is None:
            raise DogeError(
                "--depth-invert flips depth maps read from --control-dir; the estimated ones are already "
                "near = bright, as the depth ControlNet expects: drop --depth-invert or pass --control-dir"
            )
        self._model = None
        self._processor = None

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        if self.control_dir is None:
            info["model"] = str(self.options["model"])
        return info

    def make(self, image: Image.Image, size: tuple[int, int], source_path: str | Path) -> Image.Image | None:
        made = super().make(image, size, source_path)
        if made is None or not self.options["invert"]:
            return made
        return ImageOps.invert(made.convert("RGB"))

    def compute(self, image: Image.Image, size: tuple[int, int]) -> Image.Image:
        import torch

        model, processor = self._load()
        resized = image.resize(tuple(size), Image.Resampling.BICUBIC)
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

    def _load(self):
        if self._model is None:
            self._model, self._processor = load_depth_model(str(self.options["model"]), self.device)
        return self._model, self._processor


def load_depth_model(model_id: str, device: str = "cpu"):
    """Load a depth-estimation model and its image processor, or raise a one-line DogeError."""
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    from doge.devices import pick_device

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
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return DogeError(
            f"{model_id} is not a loadable depth-estimation model folder ({reason}); "
            "pass --depth-model with a folder saved by transformers' save_pretrained"
        )
    return DogeError(
        f"depth model {model_id} not found locally and no hub access: pass --depth-model DIR "
        "or use --control-dir with precomputed depth maps"
    )


def build_tiny_depth(path: str | Path, seed: int = 0) -> Path:
    """Save a tiny random DPT depth model and its processor to ``path`` (for tests and demos).

    It loads through ``AutoModelForDepthEstimation.from_pretrained(path)`` exactly like a real one.
    """
    import torch
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    path = Path(path)
    torch.manual_seed(seed)
    config = DPTConfig(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 16, 32, 32],
        reassemble_factors=[4, 2, 1, 0.5],
        fusion_hidden_size=16,
        # Larger than the default 0.02 so the random head's output is not vanishingly small.
        initializer_range=0.1,
    )
    DPTForDepthEstimation(config).eval().save_pretrained(path)
    DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False).save_pretrained(path)
    return path
