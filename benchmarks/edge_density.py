"""Canny maps against the paper's construction: edge pixels on six scikit-image photos.

The paper made its canny maps on the 224-px CLIP centre crop, min–max stretched, with colour
Canny at 100/800, upsampled to 768 px with Lanczos (lines about 3.4 px wide). This script builds
that map independently (the crop made by CLIP's own image processor) and
counts its edge pixels (value > 127) beside:

- ``grey 100/800``: what doge did before, Canny at 100/800 on the grey image at the output size;
- ``paper``: ``--canny-maps paper`` (should match the reference);
- ``auto``: doge's default map, made at the output resolution.

All with ``--fit crop`` so every map covers the same square; ``auto, keep`` adds the default
map with ``--fit keep`` as a share of its own (larger or smaller) area.

    .venv/bin/python benchmarks/edge_density.py [--size 768]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, print_table

from doge.plugins.controls.canny import CannyControl
from doge.rendering.geometry import fit_geometry

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle", "immunohistochemistry")


def photo(name: str) -> Image.Image:
    import skimage.data

    image = getattr(skimage.data, name)()
    image = image[0] if isinstance(image, tuple) else image  # stereo_motorcycle: (left, right, disparity)
    return Image.fromarray(image).convert("RGB")


def paper_reference(image: Image.Image, size: int, low: float = 100, high: float = 800) -> np.ndarray:
    """The paper's map, built here without doge: CLIP's own processor makes the 224-px crop
    (no rescaling, no normalising), then min–max stretch, colour Canny, Lanczos up."""
    import transformers

    processor = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    pixels = processor()(images=image, do_rescale=False, do_normalize=False, return_tensors="np")["pixel_values"]
    crop = pixels[0].transpose(1, 2, 0).astype(np.float64)
    stretched = np.clip(np.rint((crop - crop.min()) / (crop.max() - crop.min()) * 255), 0, 255).astype(np.uint8)
    edges = cv2.Canny(stretched, low, high)
    return np.asarray(Image.fromarray(edges).resize((size, size), Image.Resampling.LANCZOS))


def old_default(image: Image.Image, size: int) -> np.ndarray:
    """doge before: the centre square at the output size, grey, Canny 100/800."""
    g = fit_geometry(image.width, image.height, size, "crop")
    grey = np.asarray(g.apply(image, Image.Resampling.BICUBIC).convert("L"))
    return cv2.Canny(np.ascontiguousarray(grey), 100, 800)


def count(a) -> int:
    return int((np.asarray(a.convert("L") if isinstance(a, Image.Image) else a) > 127).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=768)
    args = parser.parse_args()
    size = args.size
    print(machine())
    rows, worst = [], []
    for name in PHOTOS:
        image = photo(name)
        crop = fit_geometry(image.width, image.height, size, "crop")
        keep = fit_geometry(image.width, image.height, size, "keep")
        reference = count(paper_reference(image, size))
        paper = count(CannyControl(maps="paper").make(image, crop.output_size, name, geometry=crop))
        auto = count(CannyControl().make(image, crop.output_size, name, geometry=crop))
        auto_keep = CannyControl().make(image, keep.output_size, name, geometry=keep)
        old = count(old_default(image, size))
        area = size * size
        worst.append(auto / reference)
        rows.append(
            [
                f"{name} {image.width}×{image.height}",
                f"{reference} ({100 * reference / area:.1f}%)",
                f"{old / reference:.2f}",
                f"{paper / reference:.2f}",
                f"{auto / reference:.2f}",
                f"{100 * count(auto_keep) / (keep.output_size[0] * keep.output_size[1]):.1f}% of {keep.output_size[0]}×{keep.output_size[1]}",
            ]
        )
    print_table(
        f"Edge pixels (> 127) at {size}×{size}, --fit crop, as a share of the paper construction's",
        [
            "photo",
            "paper construction",
            "grey 100/800 (before)",
            "--canny-maps paper",
            "auto (default)",
            "auto, --fit keep",
        ],
        rows,
    )
    print(f"\nauto / paper: {min(worst):.2f}–{max(worst):.2f} (required: 0.5–2 for every photo)")


if __name__ == "__main__":
    main()
