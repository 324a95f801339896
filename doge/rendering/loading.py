"""Loading the generation engine: the unCLIP pipeline, its ControlNets and a LoRA."""

from __future__ import annotations

import logging
import warnings

from doge.errors import DogeError, NotFound, first_line

log = logging.getLogger("doge")


def image_encoder_width(model: str) -> int:
    """Width of the image embeddings the unCLIP model ``model`` is conditioned on (no weights load)."""
    from doge.hub import component_config

    config = component_config(model, "image_encoder")
    width = config.get("projection_dim")
    if not isinstance(width, int):
        raise DogeError(
            f"model {model!r}: image_encoder/config.json has no projection_dim; is it a CLIP image encoder?"
        )
    return width


def _from_pretrained(cls, location: str, what: str, **kwargs):
    try:
        with warnings.catch_warnings():
            # diffusers still passes an argument huggingface_hub has deprecated; nothing for a user to do.
            warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks.*")
            return cls.from_pretrained(location, **kwargs)
    except (OSError, ValueError) as exc:
        raise NotFound(
            f"{what} {location!r} could not be loaded ({first_line(exc)[:200]}); pass a local folder in diffusers "
            "layout, or set HF_HUB_OFFLINE=0 with network access to the hub"
        ) from None


def load_pipeline(model: str, controlnets: list[str], device: str, dtype, lora: str | None = None):
    """The StableUnCLIPControlNetImg2ImgPipeline on ``device``, with SDPA attention (diffusers' default)."""
    from doge.hub import quiet_loading, quiet_transformers

    with quiet_transformers():  # importing diffusers' pipelines prints transformers' torchvision notice
        from diffusers import ControlNetModel

        from doge.rendering.pipeline import StableUnCLIPControlNetImg2ImgPipeline
    quiet_loading()

    nets = [_from_pretrained(ControlNetModel, net, "ControlNet", dtype=dtype) for net in controlnets]
    controlnet = None if not nets else nets[0] if len(nets) == 1 else nets
    pipe = _from_pretrained(
        StableUnCLIPControlNetImg2ImgPipeline, model, "unCLIP model", controlnet=controlnet, dtype=dtype
    )
    if lora:
        try:
            pipe.load_lora_weights(lora)
        except (OSError, ValueError) as exc:
            raise DogeError(f"--lora {lora} could not be loaded: {first_line(exc)[:200]}") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def embed_images(pipe, images):
    """CLIP ``image_embeds`` of PIL images with the pipeline's own image encoder, as gaps are made:
    through :func:`doge.data.clip_pixels.clip_pixels`, the one preprocessing ``gap create`` uses."""
    import torch

    from doge.data.clip_pixels import clip_pixels

    pixels = clip_pixels(pipe.feature_extractor, images)
    encoder = pipe.image_encoder
    with torch.no_grad():
        return encoder(pixels.to(device=encoder.device, dtype=encoder.dtype)).image_embeds
