"""The DoGE paper's canny map, written from its public code (humansensinglab/DoGE) without doge.

generate.py: ``CLIPImageProcessor`` of the unCLIP model (shortest side 224 bicubic, centre crop
224, rescale by 1/255, CLIP mean/std normalisation) gives float32 ``pixel_values``, cast to
float16 by torch; ``get_control_image`` takes them to numpy (HWC, still float16), stretches
``(x - x.min()) / (x.max() - x.min()) * 255`` over all channels, ``astype(np.uint8)`` (truncation),
and runs ``cv2.Canny`` on the colour image, stacked to three channels. The pipeline
(``StableUnCLIPControlNetImg2ImgPipeline.prepare_control_image`` → diffusers'
``VaeImageProcessor.preprocess``, resample "lanczos") resizes the 224-px map to the output with
PIL's Lanczos.

HED (generate.py): controlnet_aux's ``HEDdetector`` called on that same 8-bit 224-px image with
``detect_resolution=1024`` (its ``resize_image``: shortest side 1024, sides rounded to 64,
Lanczos up), side outputs averaged, sigmoid, uint8, back to ``image_resolution`` 512 (linear),
then the pipeline's Lanczos.

Shared by the tests and ``benchmarks/edge_density.py`` (no pytest here).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from PIL import Image


def paper_pixels(image: Image.Image) -> np.ndarray:
    """The 8-bit 224x224x3 image generate.py's ``get_control_image`` makes for its controls.

    A flat picture, where the paper divides zero by zero (NaN cast to uint8), is taken as all zeros.
    """
    import transformers

    processor = (getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor)()
    pixels = processor(images=np.array(image.convert("RGB")), return_tensors="pt").pixel_values.to(torch.float16)
    x = pixels.numpy()[0].transpose(1, 2, 0)
    if x.max() == x.min():
        return np.zeros(x.shape, dtype=np.uint8)
    return ((x - x.min()) / (x.max() - x.min()) * 255).astype(np.uint8)


def paper_canny(image: Image.Image, size: int, low: float = 100, high: float = 800) -> np.ndarray:
    """The paper's ``size``×``size`` canny map of ``image`` (HxWx3 uint8)."""
    edges = cv2.Canny(paper_pixels(image), low, high)[:, :, None]
    edges = Image.fromarray(np.concatenate([edges, edges, edges], axis=2))
    return np.asarray(edges.resize((size, size), Image.Resampling.LANCZOS))


def annotator_resize(x: np.ndarray, resolution: int) -> np.ndarray:
    """controlnet_aux's ``resize_image``: shortest side to ``resolution``, sides rounded to 64."""
    h, w = x.shape[:2]
    k = resolution / min(h, w)
    h, w = int(np.round(h * k / 64.0)) * 64, int(np.round(w * k / 64.0)) * 64
    return cv2.resize(x, (w, h), interpolation=cv2.INTER_LANCZOS4 if k > 1 else cv2.INTER_AREA)


def paper_hed(image: Image.Image, size: int, network) -> np.ndarray:
    """The paper's HED map: ``HEDdetector(np_image, detect_resolution=1024)`` (image_resolution
    left at 512) on the same 8-bit 224-px image, then the pipeline's Lanczos to ``size``.

    ``network`` is the ControlNetHED_Apache2 module (five side outputs).
    """
    x = annotator_resize(paper_pixels(image), 1024)
    h, w = x.shape[:2]
    with torch.no_grad():
        sides = network(torch.from_numpy(x.copy()).float().permute(2, 0, 1)[None])
    sides = [cv2.resize(e.numpy().astype(np.float32)[0, 0], (w, h), interpolation=cv2.INTER_LINEAR) for e in sides]
    edge = 1 / (1 + np.exp(-np.mean(np.stack(sides, axis=2), axis=2).astype(np.float64)))
    edge = (edge * 255.0).clip(0, 255).astype(np.uint8)
    edge = np.concatenate([edge[:, :, None]] * 3, axis=2)
    out_h, out_w = annotator_resize(x, 512).shape[:2]
    edge = cv2.resize(edge, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    return np.asarray(Image.fromarray(edge).resize((size, size), Image.Resampling.LANCZOS))
