"""Loading the generation engine: the unCLIP pipeline, its ControlNets and a LoRA."""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING

from doge.errors import DogeError, NotFound, first_line
from doge.hub import component_config, quiet_loading, quiet_transformers

if TYPE_CHECKING:  # diffusers, torch and PIL load with the engine, not with this module
    import torch
    from diffusers.models import ControlNetModel
    from PIL import Image

    from doge.rendering.pipeline import StableUnCLIPControlNetImg2ImgPipeline

log = logging.getLogger("doge")


def image_encoder_width(model: str) -> int:
    """Width of the image embeddings the unCLIP model ``model`` is conditioned on (no weights load)."""
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


def _pipeline_classes() -> tuple[type[ControlNetModel], type[StableUnCLIPControlNetImg2ImgPipeline]]:
    """diffusers' ControlNetModel and doge's pipeline class, imported here to keep diffusers off the CLI's fast paths."""
    with quiet_transformers():  # importing diffusers' pipelines prints transformers' torchvision notice
        # from the defining package: type checkers read diffusers' top-level names as dummy placeholders
        from diffusers.models import ControlNetModel

        from doge.rendering.pipeline import StableUnCLIPControlNetImg2ImgPipeline
    return ControlNetModel, StableUnCLIPControlNetImg2ImgPipeline


def _controlnet_argument(nets: list):
    """The pipeline's ``controlnet``: None, the one ControlNet, or the list of them."""
    return None if not nets else nets[0] if len(nets) == 1 else nets


def load_pipeline(model: str, controlnets: list[str], device: str, dtype, lora: str | None = None):
    """The StableUnCLIPControlNetImg2ImgPipeline on ``device``, with SDPA attention (diffusers' default)."""
    ControlNetModel, StableUnCLIPControlNetImg2ImgPipeline = _pipeline_classes()
    quiet_loading()

    nets = [_from_pretrained(ControlNetModel, net, "ControlNet", dtype=dtype) for net in controlnets]
    pipe = _from_pretrained(
        StableUnCLIPControlNetImg2ImgPipeline, model, "unCLIP model", controlnet=_controlnet_argument(nets), dtype=dtype
    )
    if lora:
        try:
            pipe.load_lora_weights(lora)
        except (OSError, ValueError) as exc:
            raise DogeError(f"--lora {lora} could not be loaded: {first_line(exc)[:200]}") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def embed_images(pipe: StableUnCLIPControlNetImg2ImgPipeline, images: list[Image.Image]) -> torch.Tensor:
    """CLIP ``image_embeds`` of PIL images with the pipeline's own image encoder, as gaps are made:
    through :func:`doge.data.clip_pixels.clip_pixels`, the one preprocessing ``gap create`` uses."""
    import torch

    from doge.data.clip_pixels import clip_pixels

    pixels = clip_pixels(pipe.feature_extractor, images)
    encoder = pipe.image_encoder
    with torch.no_grad():
        return encoder(pixels.to(device=encoder.device, dtype=encoder.dtype)).image_embeds


def loaded_model_name(pipe) -> str:
    """The model (folder or hub id) a user's loaded unCLIP pipeline came from, as ``from_pretrained`` recorded it.

    One clear line for anything that is not a Stable unCLIP img2img pipeline, or one built in memory.
    """
    # diffusers is imported here, not at the top, to keep it off the CLI's fast paths; from the defining
    # module, as type checkers read `diffusers.StableUnCLIPImg2ImgPipeline` as a dummy placeholder
    from diffusers.pipelines.stable_diffusion.pipeline_stable_unclip_img2img import StableUnCLIPImg2ImgPipeline

    if not isinstance(pipe, StableUnCLIPImg2ImgPipeline):
        raise DogeError(
            f"pipeline= takes a loaded StableUnCLIPImg2ImgPipeline (diffusers' or doge's), not {type(pipe).__name__}"
        )
    name = pipe.config.get("_name_or_path")
    if not name:
        raise DogeError(
            "pipeline= was not loaded with from_pretrained, so doge cannot tell its model: "
            "pass model= naming the folder or hub id its weights came from"
        )
    return str(name)


def pipeline_from_loaded(pipe, controlnets: list[str], width: int):
    """doge's pipeline on the modules of ``pipe``, a loaded unCLIP pipeline (stock or doge's), plus ``controlnets``.

    Nothing of ``pipe`` is copied, cast or loaded again: the new pipeline holds the same module
    objects (as diffusers' ``from_pipe`` would, without its cast of every module to one dtype);
    only the ControlNets load, on ``pipe``'s device and in its dtype. ``width`` is the gap's: a
    pipeline whose image encoder has another width is refused in one line, before any ControlNet loads.
    """
    ControlNetModel, StableUnCLIPControlNetImg2ImgPipeline = _pipeline_classes()
    name = loaded_model_name(pipe)
    encoder_width = pipe.image_encoder.config.projection_dim
    if encoder_width != width:
        raise DogeError(
            f"the pipeline's image encoder has width {encoder_width} but the gap has width {width}; "
            "pass the pipeline of the unCLIP model the gap was made with, or recreate the gap with --model"
        )
    nets = [
        _from_pretrained(ControlNetModel, net, "ControlNet", dtype=pipe.dtype).to(pipe.device) for net in controlnets
    ]
    components = {k: v for k, v in pipe.components.items() if k != "controlnet"}
    built = StableUnCLIPControlNetImg2ImgPipeline(**components, controlnet=_controlnet_argument(nets))
    built.register_to_config(_name_or_path=name)
    built.set_progress_bar_config(disable=True)
    return built
