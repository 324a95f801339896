"""Canny maps against the paper's construction, on 32 varied pictures at 512, 768 and 1024 px.

The paper's canny map (its generate.py and pipeline): CLIP's processor pixels of the 224-px centre
crop, normalised with CLIP's mean and std, cast to float16, min–max stretched over all channels,
truncated to uint8, colour Canny at 100/800, Lanczos up to the output. The reference is built
without doge (``tests/rendering/paper_reference.py``, CLIP's own processor and torch's float16 cast). Beside
it, with ``--fit crop`` so every map covers the same square:

- ``--canny-maps paper``: pixels that differ from the reference (should be 0);
- ``size-only``: the previous default, thresholds from the output size alone (blur 0.6·s, Canny
  at 0.7·thresholds/s on the stretched raw pixels, lines s px wide, s = side/224);
- ``gated``: the construction the issue describes: full-resolution Canny at 0.35·thresholds/s
  (half the size-only rule's), kept only within the paper's upsampled edges widened by
  2·round(s)+1 px, lines round(s) px wide;
- ``auto``: the default now: ``gated``, and where its count strays outside 0.67–1.5× of the
  paper map's (noise-like textures) the thresholds are moved until it does not;
- ``auto, 1-px lines``: auto without widening the lines;
- ``calibrated``: full-resolution Canny with per-image thresholds bisected until its edge count
  meets the paper's (no gating): the count matched by construction, the places not.

Edge pixels are values > 127. A pair is "empty" when the paper's map has under 0.1% edge pixels;
there every construction should draw (almost) nothing.

    .venv/bin/python benchmarks/edge_density.py [--sizes 512 768 1024]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "rendering"))

from common import machine, print_table
from paper_reference import paper_canny

from doge.plugins.controls import canny
from doge.plugins.controls.canny import CannyControl, paper_stretch
from doge.rendering.geometry import fit_geometry
from doge.sample_data import edge_pictures

EMPTY = 0.001  # under this share of edge pixels a map counts as empty


def size_only(image: Image.Image, size: int) -> np.ndarray:
    """The previous default: thresholds from the output size alone, on the raw pixels' stretch."""
    g = fit_geometry(image.width, image.height, size, "crop")
    view = np.asarray(g.apply(image, Image.Resampling.BICUBIC), dtype=np.float64)
    view = np.clip(np.rint((view - view.min()) / max(view.max() - view.min(), 1e-9) * 255), 0, 255).astype(np.uint8)
    s = size / 224
    view = cv2.GaussianBlur(view, (0, 0), 0.6 * s)
    edges = cv2.Canny(view, 100 * 0.7 / s, 800 * 0.7 / s)
    return cv2.dilate(edges, np.ones((round(s), round(s)), np.uint8))


def gated(image: Image.Image, size: int) -> np.ndarray:
    """auto with no threshold search (the construction the issue describes)."""
    g = fit_geometry(image.width, image.height, size, "crop")
    band, canny._BAND = canny._BAND, (0.0, float("inf"))
    try:
        return np.asarray(CannyControl().make(image, g.output_size, "x", geometry=g))
    finally:
        canny._BAND = band


def thin_auto(image: Image.Image, size: int) -> np.ndarray:
    """auto without widening its lines (1 px at every size)."""
    g = fit_geometry(image.width, image.height, size, "crop")
    made = np.asarray(CannyControl().make(image, g.output_size, "x", geometry=g))[..., 0]
    return cv2.erode(made, np.ones((round(size / 224),) * 2, np.uint8), anchor=(0, 0))


def calibrated(image: Image.Image, size: int, target: int) -> np.ndarray:
    """Full-resolution Canny whose thresholds (ratio 1:8) are bisected to meet ``target`` edge pixels."""
    g = fit_geometry(image.width, image.height, size, "crop")
    s = size / 224
    view = cv2.GaussianBlur(paper_stretch(g.apply(image, Image.Resampling.BICUBIC)), (0, 0), 0.6 * s)
    width = np.ones((round(s), round(s)), np.uint8)
    if target == 0:
        return np.zeros(view.shape[:2], np.uint8)
    lo, hi = 1.0, 4000.0
    for _ in range(14):
        mid = (lo * hi) ** 0.5
        edges = cv2.dilate(cv2.Canny(view, mid / 8, mid), width)
        lo, hi = (mid, hi) if (edges > 127).sum() > target else (lo, mid)
    return cv2.dilate(cv2.Canny(view, hi / 8, hi), width)


def count(a) -> int:
    a = np.asarray(a)
    return int(((a[..., 0] if a.ndim == 3 else a) > 127).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 768, 1024])
    args = parser.parse_args()
    print(machine())
    variants = ("size-only", "gated", "auto", "auto, 1-px lines", "calibrated")
    ratios: dict[str, dict[int, list[float]]] = {v: {s: [] for s in args.sizes} for v in variants}
    outside = {v: 0 for v in variants}
    on_empty = {v: 0 for v in variants}
    rows, differing, pairs, empties = [], 0, 0, 0
    for name, array in edge_pictures():
        image = Image.fromarray(array)
        row = [f"{name} {image.width}×{image.height}"]
        for size in args.sizes:
            g = fit_geometry(image.width, image.height, size, "crop")
            reference = paper_canny(image, size)
            paper = np.asarray(CannyControl(maps="paper").make(image, g.output_size, name, geometry=g))
            differing += int((paper != reference).any(axis=2).sum())
            ref = count(reference)
            made = {
                "size-only": count(size_only(image, size)),
                "gated": count(gated(image, size)),
                "auto": count(CannyControl().make(image, g.output_size, name, geometry=g)),
                "auto, 1-px lines": count(thin_auto(image, size)),
                "calibrated": count(calibrated(image, size, ref)),
            }
            pairs += 1
            empty = ref < EMPTY * size * size
            empties += empty
            cells = []
            for v in variants:
                if empty:
                    on_empty[v] += made[v] >= EMPTY * size * size
                    cells.append(f"{made[v]}")
                else:
                    r = made[v] / ref
                    ratios[v][size].append(r)
                    outside[v] += not 0.5 <= r <= 2
                    cells.append(f"{r:.2f}")
            row.append(f"{100 * ref / size**2:.1f}% · " + " / ".join(cells[:3]))
        rows.append(row)
    print_table(
        "Paper map's edge share at each size · size-only / gated / auto as a share of it (edge pixels on empty maps)",
        ["picture", *(f"{s}×{s}" for s in args.sizes)],
        rows,
    )
    print(f"\n--canny-maps paper against the reference: {differing} differing pixels over {pairs} maps")
    summary = []
    for v in variants:
        summary.append(
            [
                v,
                f"{outside[v]} of {pairs - empties}",
                f"{on_empty[v]} of {empties}",
                *(f"{statistics.median(ratios[v][s]):.2f}" for s in args.sizes),
                f"{min(min(x) for x in ratios[v].values()):.2f}–{max(max(x) for x in ratios[v].values()):.2f}",
            ]
        )
    print_table(
        "Each construction over all pictures and sizes",
        ["construction", "pairs outside 0.5–2×", "edges on empty pairs", *(f"median {s}" for s in args.sizes), "range"],
        summary,
    )


if __name__ == "__main__":
    main()
