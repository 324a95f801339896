"""The DoGE paper's canny map, written from its public code (humansensinglab/DoGE) without doge.

generate.py: ``CLIPImageProcessor`` of the unCLIP model (shortest side 224 bicubic, centre crop
224, rescale by 1/255, CLIP mean/std normalisation) gives float32 ``pixel_values``, cast to
float16 by torch; ``get_control_image`` takes them to numpy (HWC, still float16), stretches
``(x - x.min()) / (x.max() - x.min()) * 255`` over all channels, ``astype(np.uint8)`` (truncation),
and runs ``cv2.Canny`` on the colour image, stacked to three channels. The pipeline
(``StableUnCLIPControlNetImg2ImgPipeline.prepare_control_image`` → diffusers'
``VaeImageProcessor.preprocess``, resample "lanczos") resizes the 224-px map to the output with
PIL's Lanczos.

Shared by the tests and ``benchmarks/edge_density.py`` (no pytest here).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from PIL import Image


def paper_canny(image: Image.Image, size: int, low: float = 100, high: float = 800) -> np.ndarray:
    """The paper's ``size``×``size`` canny map of ``image`` (HxWx3 uint8).

    A flat picture, where the paper divides zero by zero (NaN cast to uint8), is taken as all zeros.
    """
    import transformers

    processor = (getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor)()
    pixels = processor(images=np.array(image.convert("RGB")), return_tensors="pt").pixel_values.to(torch.float16)
    x = pixels.numpy()[0].transpose(1, 2, 0)
    if x.max() == x.min():
        stretched = np.zeros(x.shape, dtype=np.uint8)
    else:
        stretched = ((x - x.min()) / (x.max() - x.min()) * 255).astype(np.uint8)
    edges = cv2.Canny(stretched, low, high)[:, :, None]
    edges = Image.fromarray(np.concatenate([edges, edges, edges], axis=2))
    return np.asarray(edges.resize((size, size), Image.Resampling.LANCZOS))
