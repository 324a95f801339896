"""What an image encoder plugin provides: the ``Encoder`` protocol.

Encoders are registered through the ``register_encoders`` hook and built as
``cls(model=..., device=..., dtype=...)``. Batching and streaming live in ``doge.data.images``;
an encoder only turns images into pixels (in worker processes) and pixels into embeddings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from doge import pluginmanager
from doge.errors import DogeError

if TYPE_CHECKING:  # keep ``import doge.data.encoder`` free of torch and PIL
    import torch
    from PIL import Image


@runtime_checkable
class Encoder(Protocol):
    plugin: str  # the name it is registered under, e.g. "clip"
    model_id: str  # HF id or local folder, as given
    dim: int  # embedding width
    device: str
    dtype: torch.dtype

    def describe(self) -> dict[str, Any]:
        """Provenance: ``{"plugin", "model", "revision", "dim", "dtype"}``.

        ``revision`` is the commit hash when the model came from the HF cache, else None;
        ``dtype`` is a string such as ``"float32"``. The device is left out: it does not change
        what the embeddings mean.
        """
        ...

    @property
    def preprocessor(self) -> Callable[[Image.Image], torch.Tensor]:
        """A picklable, weight-free callable: PIL RGB image -> CHW float32 tensor.

        It runs in DataLoader worker processes, so it must not hold the model.
        """
        ...

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` float32 pixels -> ``[B, D]`` float32 embeddings on the CPU."""
        ...


def describe(encoder) -> dict[str, Any]:
    """The provenance of an encoder that keeps its revision in ``encoder.revision``."""
    return {
        "plugin": encoder.plugin,
        "model": encoder.model_id,
        "revision": encoder.revision,
        "dim": encoder.dim,
        "dtype": str(encoder.dtype).removeprefix("torch."),
    }


def encode_pixels(encoder: Encoder, pixels: torch.Tensor) -> torch.Tensor:
    """``encoder``'s vectors of a batch of preprocessed ``pixels``, as float32 on the CPU (a local run
    and a Ray actor alike)."""
    import torch  # only code that encodes pays for torch; this module is imported by the CLI too

    # no_grad, not inference_mode: inference tensors refuse later in-place maths by estimators.
    with torch.no_grad():
        vectors = encoder.encode(pixels)
    return vectors.detach().to(device="cpu", dtype=torch.float32)


def build_encoder(encoder: str = "clip", model: str | None = None, device: str | None = None, dtype: str | None = None):
    """An instance of the encoder plugin registered as ``encoder``."""
    cls = pluginmanager.get("encoders", encoder)
    return cls(model=model, device=device, dtype=dtype)


def encoder_for_gap(gap, model: str | None = None, device: str | None = None):
    """The encoder whose space ``gap`` (a ``doge.gaps.Gap``) lives in: its recorded plugin and model
    (``model`` overrides the model), checked against the gap's width before anything is encoded.

    A gap that records no encoder plugin uses the default ``clip`` one only when ``model`` names
    the model it was made with; a wrong guess would shift images along a meaningless direction.
    """
    recorded = gap.encoder or {}
    plugin = recorded.get("plugin")
    if not plugin and model is None:
        raise DogeError(f"gap {gap.ref} does not record its encoder: pass --model with the model it was made with")
    enc = build_encoder(plugin or "clip", model=model or recorded.get("model"), device=device)
    if enc.dim != gap.dim:
        raise DogeError(
            f"gap {gap.ref} has width {gap.dim} but the {plugin or 'clip'} encoder of {enc.model_id} gives "
            f"{enc.dim}: pass the gap's own model with --model {recorded.get('model') or 'MODEL'}"
        )
    return enc
