"""Real sample images for demos, tests and benchmarks, with no download.

scikit-image ships a handful of real photographs. Crops of them are the ``real`` domain; other
crops restyled with OpenCV (stylization, pencil sketch, …) make target domains. The shifts are
real image transforms, so gaps between them are meaningful to a pretrained encoder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "motorcycle_left", "hubble_deep_field")
SHIFTS = ("painting", "sketch", "night", "blur")


def _photo(name: str) -> np.ndarray:
    from skimage import data

    if name == "motorcycle_left":
        image = data.stereo_motorcycle()[0]
    else:
        image = getattr(data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


def crops(count: int, size: int = 160, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """``count`` random square RGB crops, drawn round-robin from the photographs."""
    rng = np.random.default_rng(seed)
    photos = [(name, _photo(name)) for name in PHOTOS]
    out = []
    for i in range(count):
        name, image = photos[i % len(photos)]
        h, w = image.shape[:2]
        side = int(rng.integers(min(h, w) // 3, min(h, w) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        import cv2

        crop = cv2.resize(image[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_AREA)
        out.append((f"{name}_{i:04d}", crop))
    return out


def shift(image: np.ndarray, kind: str) -> np.ndarray:
    """Restyle an RGB uint8 image into one of SHIFTS."""
    import cv2

    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if kind == "painting":
        out = cv2.stylization(bgr, sigma_s=60, sigma_r=0.45)
    elif kind == "sketch":
        grey, _ = cv2.pencilSketch(bgr, sigma_s=60, sigma_r=0.07, shade_factor=0.05)
        out = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    elif kind == "night":
        dark = bgr.astype(np.float32) * 0.35
        dark[..., 0] += 25  # a blue cast
        out = np.clip(dark, 0, 255).astype(np.uint8)
    elif kind == "blur":
        out = cv2.GaussianBlur(bgr, (0, 0), sigmaX=4)
    else:
        raise ValueError(f"unknown shift {kind!r}; known: {', '.join(SHIFTS)}")
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


def write_domains(
    folder: str | Path, count: int = 24, size: int = 160, seed: int = 0, shifts: tuple[str, ...] = ("painting",)
) -> dict[str, Path]:
    """Write ``folder/real`` and ``folder/<shift>`` for each shift, from disjoint crops.

    Real and shifted images come from different crops, so a gap between the folders is a gap
    between domains, not a pairing of the same pictures.
    """
    from PIL import Image

    folder = Path(folder)
    pool = crops(count * (1 + len(shifts)), size=size, seed=seed)
    out = {}
    for j, domain in enumerate(("real", *shifts)):
        target = folder / domain
        target.mkdir(parents=True, exist_ok=True)
        for stem, crop in pool[j :: 1 + len(shifts)]:
            image = crop if domain == "real" else shift(crop, domain)
            Image.fromarray(image).save(target / f"{stem}.png")
        out[domain] = target
    return out


def main() -> None:
    import sys

    folder = sys.argv[1] if len(sys.argv) > 1 else "demo-out/data"
    written = write_domains(folder)
    for domain, path in written.items():
        print(f"{domain}: {path} ({len(list(path.iterdir()))} images)")


if __name__ == "__main__":
    main()
