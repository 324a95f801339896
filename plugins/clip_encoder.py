"""The built-in CLIP image encoder: ``image_embeds`` of ``CLIPVisionModelWithProjection``.

It reads either a diffusers unCLIP model (``image_encoder/`` and ``feature_extractor/``
subfolders, the encoder the generator was trained with) or a plain CLIP model (top level),
from a local folder or a Hugging Face id. torch and transformers are imported only when an
encoder is built: the plugin manager imports this module on ``doge --help``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from doge.plugin import (
    DogeError,
    ModelSource,
    clip_pixels,
    default_model,
    describe_encoder,
    first_line,
    hookimpl,
    load_processor,
    pick_device,
    pick_dtype,
    quiet_loading,
    resolve_source,
    warn_if_tiny,
)

if TYPE_CHECKING:  # torch and PIL load when an encoder is built
    import torch
    from PIL import Image


def _resolve_dtype(device: str, dtype: Any):
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    return pick_dtype(device, dtype)


class ClipPreprocessor:
    """PIL image -> CHW float32 pixels. Holds only the image processor, so it pickles cheaply."""

    def __init__(self, processor: Any):
        self.processor = processor

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return clip_pixels(self.processor, [image])[0]


class ClipEncoder:
    """CLIP image embeddings (``image_embeds``), as the DoGE paper uses them."""

    plugin = "clip"

    def __init__(
        self, model: str | None = None, device: str | None = None, dtype: Any = None, revision: str | None = None
    ):

        self.model_id = str(model) if model else default_model()
        self.device = pick_device(device)
        self.dtype = _resolve_dtype(self.device, dtype)
        source = resolve_source(self.model_id, revision)
        warn_if_tiny(source.location)
        self.revision = source.commit
        # Pin the snapshot the layout was read from, so encoder and processor match it.
        hub_revision = (source.commit or revision) if source.on_hub else None
        self._model = self._load_model(source, hub_revision)
        self._preprocessor = ClipPreprocessor(self._load_processor(source, hub_revision))
        self.dim = int(self._model.config.projection_dim)

    def _load_model(self, source: ModelSource, revision: str | None):
        from transformers import CLIPVisionModelWithProjection

        quiet_loading()
        try:
            model = CLIPVisionModelWithProjection.from_pretrained(
                source.location, subfolder=source.encoder_subfolder, revision=revision or "main", dtype=self.dtype
            )
        except OSError as exc:
            raise DogeError(f"cannot load the CLIP image encoder of {self.model_id!r}: {first_line(exc)}") from exc
        # transformers types PreTrainedModel.to as an unbound functools.wraps wrapper
        return model.to(self.device).eval()  # type: ignore[arg-type]

    def _load_processor(self, source: ModelSource, revision: str | None):
        try:
            return load_processor(source.location, source.processor_subfolder, revision)
        except OSError as exc:
            raise DogeError(f"cannot load the CLIP image processor of {self.model_id!r}: {first_line(exc)}") from exc

    @property
    def preprocessor(self) -> ClipPreprocessor:
        return self._preprocessor

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        import torch

        with torch.inference_mode():
            out = self._model(pixel_values=pixels.to(self.device, self.dtype))
            return out.image_embeds.float().cpu()

    def describe(self) -> dict[str, Any]:
        return describe_encoder(self)


@hookimpl
def register_encoders(register):
    register("clip", ClipEncoder)
