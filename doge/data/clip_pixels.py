"""One CLIP preprocessing for every embedding doge makes: gap extraction, render, eval and filter.

transformers 5 gives ``CLIPImageProcessor`` a torchvision backend whenever torchvision is
installed, and a PIL one otherwise; their resizers differ, so a gap made with one and a source
shifted with the other would sit in slightly different places. doge always uses the PIL processor
(bicubic resize of the shortest side, centre crop: the paper's preprocessing), built from the
model's own ``preprocessor_config.json``, and :func:`clip_pixels` is the one way images become
pixels.

torch and transformers are imported inside the functions: this module is imported on the CLI's
fast path through the CLIP plugin.
"""

from __future__ import annotations

from typing import Any


def pil_processor_class() -> Any:
    import transformers

    # transformers < 5 has only CLIPImageProcessor, which is the PIL one there.
    return getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor


def pil_processor(processor: Any) -> Any:
    """The PIL CLIP processor with ``processor``'s settings (itself when it already is one)."""
    cls = pil_processor_class()
    if type(processor) is cls:
        return processor
    settings = {k: v for k, v in processor.to_dict().items() if k not in ("image_processor_type", "processor_class")}
    return cls.from_dict(settings)


def load_processor(location: str, subfolder: str | None = None, revision: str | None = None) -> Any:
    """The PIL CLIP processor saved in ``location`` (``subfolder``): the model's own settings."""
    kwargs: dict[str, Any] = {"revision": revision}
    if subfolder:
        kwargs["subfolder"] = subfolder
    return pil_processor_class().from_pretrained(location, **kwargs)


def clip_pixels(processor: Any, images: list) -> Any:
    """PIL images → ``[B, 3, H, W]`` float32 pixels, through the PIL processor."""
    rgb = [image if image.mode == "RGB" else image.convert("RGB") for image in images]
    return pil_processor(processor)(images=rgb, return_tensors="pt")["pixel_values"].float()
