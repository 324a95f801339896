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
    if image.dtype == bool:  # binary drawings (horse, binary_blobs)
        image = image.astype(np.uint8) * 255
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


# Photos and drawings from scikit-image for edge maps: each kind of picture a canny map meets.
EDGE_PHOTOS = (
    "astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "immunohistochemistry", "camera",
    "coins", "moon", "retina", "hubble_deep_field", "clock", "colorwheel", "page", "text",
    "brick", "grass", "gravel", "horse", "logo", "microaneurysms", "checkerboard",
)  # fmt: skip
EDGE_SYNTHETIC = ("noise", "stripes", "written", "stars", "line_art", "dark", "flat", "gradient", "fog", "small")


def _synthetic(name: str) -> np.ndarray:
    """A made picture: textures, text, a star field, line art, dark, flat and faint images."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(sum(map(ord, name)))
    if name == "noise":  # fine texture
        return rng.integers(0, 256, (400, 520, 3), dtype=np.uint8)
    if name == "stripes":  # a periodic texture, tilted
        y, x = np.mgrid[0:480, 0:360]
        return np.stack([((np.sin((x + 0.4 * y) / 3.0) > 0) * 200 + 30).astype(np.uint8)] * 3, axis=-1)
    if name == "written":  # black text on white, several sizes
        image = Image.new("RGB", (600, 400), "white")
        draw = ImageDraw.Draw(image)
        for i in range(12):
            draw.text((10 + 7 * i, 10 + 32 * i), "Domain gap embeddings 0123 " * 2, fill="black", font_size=14 + 2 * i)
        return np.asarray(image)
    if name == "stars":  # a few hundred dots on black
        sky = np.zeros((500, 500, 3), dtype=np.uint8)
        for x, y, v in zip(rng.integers(0, 500, 300), rng.integers(0, 500, 300), rng.integers(60, 256, 300)):
            sky[y : y + 1 + (v > 240), x : x + 1 + (v > 240)] = v
        return sky
    if name == "line_art":  # thin black strokes on white
        image = Image.new("RGB", (640, 480), "white")
        draw = ImageDraw.Draw(image)
        for _ in range(25):
            x0, y0, x1, y1 = (int(v) for v in rng.integers(0, 480, 4))
            draw.line((x0, y0, x1 + 160, y1), fill="black", width=2)
        for _ in range(8):
            x, y, r = (int(v) for v in rng.integers(40, 400, 3))
            draw.ellipse((x, y, x + r // 3 + 10, y + r // 3 + 10), outline="black", width=2)
        return np.asarray(image)
    if name == "dark":  # a photo at 4% of its brightness
        return (_photo("coffee").astype(np.float64) * 0.04).astype(np.uint8)
    if name == "flat":
        return np.full((300, 400, 3), 128, dtype=np.uint8)
    if name == "gradient":  # a smooth ramp: no edges
        ramp = np.linspace(0, 255, 500)[None, :, None]
        return np.broadcast_to(ramp, (400, 500, 3)).astype(np.uint8)
    if name == "fog":  # a photo at 8% of its contrast
        photo = _photo("rocket").astype(np.float64)
        return (photo * 0.08 + 128 * 0.92).astype(np.uint8)
    if name == "small":  # a thumbnail, far below the CLIP view
        import cv2

        return cv2.resize(_photo("astronaut"), (48, 36), interpolation=cv2.INTER_AREA)
    raise ValueError(f"unknown picture {name!r}; known: {', '.join(EDGE_SYNTHETIC)}")


def edge_pictures() -> list[tuple[str, np.ndarray]]:
    """Varied RGB pictures for edge maps: photos, textures, text, stars, line art, dark, flat (no download)."""
    return [(name, _photo(name)) for name in EDGE_PHOTOS] + [(name, _synthetic(name)) for name in EDGE_SYNTHETIC]


def main() -> None:
    import sys

    folder = sys.argv[1] if len(sys.argv) > 1 else "demo-out/data"
    written = write_domains(folder)
    for domain, path in written.items():
        print(f"{domain}: {path} ({len(list(path.iterdir()))} images)")


if __name__ == "__main__":
    main()
