"""HED soft edges of the source image, as the SD 2.1 HED ControlNet was trained on.

The network is ControlNet 1.1's Apache-2.0 HED (``ControlNetHED_Apache2`` in lllyasviel's
``annotator/hed/__init__.py``, also in ``controlnet_aux/hed``), written out here because
``controlnet_aux`` imports torchvision on import. Its weights, ``ControlNetHED.pth`` of
``lllyasviel/Annotators``, are a plain state dict: loaded with ``weights_only=True`` (or from a
``.safetensors`` file), never unpickled.

Two constructions (option ``maps``, ``--hed-maps``):

- ``auto`` (the default): HED on the picture at the output's resolution, so its soft edges are
  as sharp and as well placed as the output is large.
- ``paper``: the DoGE paper's (generate.py): HED on the same 8-bit 224-px image its canny map
  starts from (CLIP's normalised pixels, min–max stretched; see
  :func:`~doge.plugins.controls.canny.paper_stretch`), as ``controlnet_aux``'s detector runs it with
  ``detect_resolution=1024``: the view brought to a 1024-px shortest side (each side rounded to 64,
  Lanczos), the detector's map brought back to its default ``image_resolution`` of 512 (linear),
  then upsampled to the output with Lanczos as the paper's pipeline does. Blurrier, and made from
  the 224-px view, but what the paper's HED results were made with.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from doge.plugin import Control, DogeError, Geometry, first_line, gray_to_rgb, letterbox, pick_device, write_atomic

if TYPE_CHECKING:  # torch loads with the network, on first use
    import torch

HED_REPO = "lllyasviel/Annotators"
HED_FILE = "ControlNetHED.pth"
# (in, out, convolutions) of the five VGG-like blocks; the real checkpoint's shapes.
_BLOCKS = ((3, 64, 2), (64, 128, 2), (128, 256, 3), (256, 512, 3), (512, 512, 3))
MAPS = ("auto", "paper")
# paper: the controlnet_aux detector's settings in generate.py (its default image_resolution).
PAPER_DETECT_RESOLUTION = 1024
PAPER_IMAGE_RESOLUTION = 512


def _network() -> torch.nn.Module:
    """``ControlNetHED_Apache2``, with the same parameter names as the checkpoint."""
    import torch
    from torch import nn

    class DoubleConvBlock(nn.Module):
        def __init__(self, input_channel: int, output_channel: int, layer_number: int):
            super().__init__()
            self.convs = nn.Sequential()
            self.convs.append(nn.Conv2d(input_channel, output_channel, kernel_size=3, padding=1))
            for _ in range(1, layer_number):
                self.convs.append(nn.Conv2d(output_channel, output_channel, kernel_size=3, padding=1))
            self.projection = nn.Conv2d(output_channel, 1, kernel_size=1)

        def forward(self, x, down_sampling: bool = False):
            h = torch.nn.functional.max_pool2d(x, kernel_size=2, stride=2) if down_sampling else x
            for conv in self.convs:
                h = torch.nn.functional.relu(conv(h))
            return h, self.projection(h)

    class ControlNetHED(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = nn.Parameter(torch.zeros(size=(1, 3, 1, 1)))
            for i, (cin, cout, n) in enumerate(_BLOCKS, start=1):
                setattr(self, f"block{i}", DoubleConvBlock(cin, cout, n))

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            h = x - self.norm
            projections = []
            for i in range(1, len(_BLOCKS) + 1):
                h, projection = getattr(self, f"block{i}")(h, down_sampling=i > 1)
                projections.append(projection)
            return projections

    return ControlNetHED()


def load_hed_state(path: str | Path) -> dict:
    """A HED state dict from ``.safetensors`` or a ``.pth`` holding tensors only (``weights_only=True``)."""
    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise DogeError(f"HED weights {path} do not exist; pass --hed-weights with ControlNetHED.pth or .safetensors")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle refusals, truncated files: one line naming the file
        raise DogeError(
            f"HED weights {path} could not be read as plain tensors ({first_line(exc)[:200]}); "
            "pass ControlNetHED.pth of lllyasviel/Annotators or a .safetensors file"
        ) from exc


def _default_weights() -> str:
    from huggingface_hub import hf_hub_download

    try:
        return hf_hub_download(HED_REPO, HED_FILE)
    except Exception as exc:  # offline and not cached, no network, gated: all "not usable here"
        raise DogeError(
            f"HED weights {HED_REPO}/{HED_FILE} not found locally and no hub access ({first_line(exc)[:120]}); "
            "pass --hed-weights FILE, or --control-dir with precomputed HED maps"
        ) from None


class HedControl(Control):
    name = "hed"
    default_controlnet = "thibaud/controlnet-sd21-hed-diffusers"
    # weights: a local ControlNetHED.pth / .safetensors; None fetches lllyasviel/Annotators' file.
    # maps: auto (HED at the output's resolution) or paper (the paper's 224-px construction).
    defaults = {"weights": None, "maps": "auto"}

    def __init__(self, control_dir: str | Path | None = None, device: str = "cpu", **options: Any) -> None:
        super().__init__(control_dir=control_dir, device=device, **options)
        if self.options["maps"] not in MAPS:
            raise DogeError(f"--hed-maps {self.options['maps']!r}: use auto or paper")
        self._net: torch.nn.Module | None = None

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        if self.control_dir is None:
            info["weights"] = str(self.options["weights"] or f"{HED_REPO}/{HED_FILE}")
        return info

    def make(self, image, size, source_path, geometry: Geometry | None = None):
        if self.control_dir is not None or geometry is None or self.options["maps"] != "paper":
            return super().make(image, size, source_path, geometry)
        from doge.plugins.controls.canny import paper_view

        return letterbox(self.paper_map(paper_view(image.convert("RGB"), geometry), geometry.picture_size()), geometry)

    def compute(self, image: Image.Image, size: tuple[int, int]) -> Image.Image:
        import numpy as np

        if self.options["maps"] == "paper":
            from doge.plugins.controls.canny import clip_scale_view

            return self.paper_map(clip_scale_view(image, (0, 0, image.width, image.height), size), size)
        width, height = size
        rgb = np.asarray(image.resize((width, height), Image.Resampling.BICUBIC), dtype=np.uint8)
        return gray_to_rgb(self._detect(rgb))

    def paper_map(self, view: Image.Image, size: tuple[int, int]) -> Image.Image:
        """generate.py's HED map from the CLIP-scale ``view``, upsampled to ``size``."""
        import cv2
        import numpy as np

        from doge.plugins.controls.canny import paper_stretch

        detect = _detector_resize(paper_stretch(view), PAPER_DETECT_RESOLUTION)
        edge = self._detect(detect)
        height, width = _detector_size(detect.shape[:2], PAPER_IMAGE_RESOLUTION)
        back = cv2.resize(np.stack([edge] * 3, axis=2), (width, height), interpolation=cv2.INTER_LINEAR)
        return Image.fromarray(back).resize(size, Image.Resampling.LANCZOS)

    def _detect(self, rgb) -> Any:
        """HED's soft edges (HxW uint8) of an HxWx3 uint8 image, at its own size."""
        import cv2
        import numpy as np
        import torch

        net = self._load()
        height, width = rgb.shape[:2]
        x = torch.from_numpy(np.array(rgb)).float().permute(2, 0, 1)[None]
        with torch.inference_mode():
            projections = net(x.to(next(net.parameters()).device))
        # As the reference detector: each side output up to full size, averaged, then a sigmoid.
        edges = [
            cv2.resize(p[0, 0].float().cpu().numpy(), (width, height), interpolation=cv2.INTER_LINEAR)
            for p in projections
        ]
        edge = 1.0 / (1.0 + np.exp(-np.mean(np.stack(edges, axis=2), axis=2).astype(np.float64)))
        return (edge * 255.0).clip(0, 255).astype(np.uint8)

    def _load(self) -> torch.nn.Module:
        if self._net is None:
            path = self.options["weights"] or _default_weights()
            net = _network()
            try:
                net.load_state_dict(load_hed_state(path))
            except RuntimeError as exc:  # wrong keys or shapes: not a ControlNetHED checkpoint
                raise DogeError(
                    f"{path} is not a ControlNetHED checkpoint ({first_line(exc)[:160]}); pass {HED_FILE} of {HED_REPO}"
                ) from exc
            self._net = net.to(pick_device(self.device)).eval()
        return self._net

    @staticmethod
    def write_random_weights(path: str | Path, seed: int = 0) -> Path:
        """Random weights of the real HED architecture as safetensors (for tests and the tiny model)."""
        import torch
        from safetensors.torch import save

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = _network()
        state = {k: v.detach().to(torch.float16).contiguous() for k, v in net.state_dict().items()}
        write_atomic(path, save(state))
        return Path(path)


def _detector_size(shape: tuple[int, int], resolution: int) -> tuple[int, int]:
    """(height, width) the ControlNet annotators resize to: shortest side ``resolution``, each side
    then rounded to a multiple of 64."""
    height, width = shape
    k = resolution / min(height, width)
    return round(height * k / 64.0) * 64, round(width * k / 64.0) * 64


def _detector_resize(rgb, resolution: int):
    """An HxWx3 uint8 image resized as the annotators resize their input (Lanczos up, area down)."""
    import cv2

    height, width = _detector_size(rgb.shape[:2], resolution)
    up = resolution > min(rgb.shape[:2])
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LANCZOS4 if up else cv2.INTER_AREA)
