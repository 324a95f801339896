"""Finding images in folders, decoding them robustly to RGB, and digesting their bytes.

Folder layout (as in the DoGE paper's code): either a flat folder of images, or a folder of
class folders where the class is the subfolder's name (images in nested folders below a class
folder belong to that class). Images lying directly in the root next to class folders form
their own class, labelled ``""`` (the same label a flat folder's images get). Hidden files and
folders (names starting with ``.``) and files whose suffix is not an image suffix are passed
over silently.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import random
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from doge import storage
from doge.errors import DogeError, NotFound

log = logging.getLogger("doge")

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".dib", ".tif", ".tiff", ".gif"})
_CHUNK = 1 << 20
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


@dataclass
class ImageSet:
    root: Path  # a local folder, or a UPath on an object store (see doge.storage)
    files: list[Path]  # absolute or root-joined paths, in encoding order
    labels: list[str]  # class of each file; "" for a flat folder

    def __len__(self) -> int:
        return len(self.files)

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels))

    def relative(self, path: Path) -> str:
        return relative_posix(path, self.root)


def is_image_file(path: Path) -> bool:
    return not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES


def relative_posix(path: Path, root: Path) -> str:
    return storage.relative(path, root)


# --- discovery -------------------------------------------------------------------------------


def discover(folder: str | os.PathLike, limit: int | None = None, seed: int = 0) -> ImageSet:
    """Find the images under ``folder``; with ``limit``, draw that many evenly across classes.

    Without a limit every image is returned, sorted by relative path. With one, each class is
    shuffled with its own generator seeded by (``seed``, class) and classes take turns giving
    one image each until ``limit`` is reached, a class that runs out leaving its share to the
    others; the drawn files are returned sorted, so a seed always gives the same list.
    """
    root = storage.location(folder)
    if limit is not None and limit < 1:
        raise DogeError(f"limit must be at least 1 (got {limit})")
    if storage.is_remote(root):
        by_class = _scan_remote(root)
    else:
        if not root.exists():
            raise NotFound(f"folder {root} does not exist")
        if not root.is_dir():
            raise DogeError(f"{root} is a file, not a folder: pass the folder that holds the images")
        by_class = _scan(root)
    if not by_class:
        looked = ", ".join(sorted(IMAGE_SUFFIXES))
        raise DogeError(f"no images found in {storage.shown(root)} (looked for {looked})")
    pairs = [(path, label) for label, paths in by_class.items() for path in paths]
    if limit is not None and limit < len(pairs):
        pairs = _draw_evenly(by_class, limit, seed)
    pairs.sort(key=lambda pair: relative_posix(pair[0], root))
    return ImageSet(root=root, files=[p for p, _ in pairs], labels=[lab for _, lab in pairs])


def _scan(root: Path) -> dict[str, list[Path]]:
    """Map class label -> sorted image paths; classes without images are left out."""
    by_class: dict[str, list[Path]] = {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            found = _images_below(entry)
            if found:
                by_class[entry.name] = found
        elif is_image_file(entry):
            by_class.setdefault("", []).append(entry)
    return by_class


def _scan_remote(root) -> dict[str, list]:
    """:func:`_scan` for a folder on an object store, from one listing of its keys."""
    by_class: dict[str, list] = {}
    for rel in storage.list_files(root):
        parts = rel.split("/")
        if any(part.startswith(".") for part in parts) or not is_image_file(Path(parts[-1])):
            continue
        by_class.setdefault(parts[0] if len(parts) > 1 else "", []).append(root / rel)
    return by_class


def _images_below(folder: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.extend(Path(dirpath) / name for name in filenames if is_image_file(Path(name)))
    return sorted(found)


def _draw_evenly(by_class: dict[str, list[Path]], limit: int, seed: int) -> list[tuple[Path, str]]:
    queues = {}
    for label, paths in by_class.items():
        shuffled = list(paths)
        # A generator per class: adding or removing one class never changes another's draw.
        random.Random(f"{seed}/{label}").shuffle(shuffled)
        queues[label] = shuffled
    # Shuffled turn order, so the classes that get one image more are not always the same ones.
    order = sorted(queues)
    random.Random(seed).shuffle(order)
    picked: list[tuple[Path, str]] = []
    while len(picked) < limit:
        for label in order:
            if queues[label] and len(picked) < limit:
                picked.append((queues[label].pop(0), label))
    return picked


# --- decoding --------------------------------------------------------------------------------


def load_image(path: str | os.PathLike) -> Image.Image | None:
    """Decode ``path`` to an RGB image, or log one warning line and return None if it cannot be."""
    image, reason = decode_image(path)
    if image is None:
        log.warning("skipping %s: %s", path, reason)
    return image


def decode_image(path: str | os.PathLike, data: bytes | None = None) -> tuple[Image.Image | None, str | None]:
    """Decode to RGB without logging: ``(image, None)``, or ``(None, reason)`` for a bad file.

    ``data``, when given, is the file's bytes already read (so callers can hash them too).
    Decompression bombs (images over ``PIL.Image.MAX_IMAGE_PIXELS``, PIL's default about 89M
    pixels) are refused rather than merely warned about.
    """
    try:
        if data is None:
            data = storage.read_bytes(path)
        if not data:
            return None, "empty file (0 bytes)"
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.load()  # inside the try: truncated or damaged data fails here
                return to_rgb(_upright(image)), None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return None, f"too large, possibly a decompression bomb ({_one_line(exc)})"
    except Image.UnidentifiedImageError:
        return None, "not an image PIL can read (damaged, or not the format its suffix says)"
    except Exception as exc:  # PIL raises OSError, ValueError, SyntaxError, ... on bad data
        return None, f"damaged or unreadable ({type(exc).__name__}: {_one_line(exc)})"


def upright_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) of ``path`` as decoded (EXIF orientation applied), from its header alone;
    None when it is not an image PIL can open."""
    try:
        with storage.open_read(path) as handle, Image.open(handle) as image:
            width, height = image.size
            try:
                orientation = image.getexif().get(0x0112, 1)
            except Exception:  # broken EXIF: decode_image keeps such a picture as stored
                orientation = 1
    except Exception:  # PIL raises OSError, ValueError, SyntaxError, ... on bad headers
        return None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _upright(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except Exception:
        # Broken EXIF should not cost a good picture: keep it as stored.
        return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB: transparency composited on white, 16/32-bit scaled to 8."""
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        image = _to_8bit_grey(image)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode == "RGB":
        return image.copy()
    return image.convert("RGB")


def _to_8bit_grey(image: Image.Image) -> Image.Image:
    # PIL's own convert("L") clips 16-bit values at 255, turning most pictures white.
    values = np.asarray(image).astype(np.float64)
    if image.mode.startswith("I;16"):
        scale = 65535.0
    elif image.mode == "F":
        scale = 1.0 if values.max(initial=0.0) <= 1.0 else 255.0
    else:  # "I": 32-bit; most often a 16-bit file, sometimes plain 8-bit values
        top = values.max(initial=0.0)
        scale = 255.0 if top <= 255 else 65535.0 if top <= 65535 else top
    grey = np.clip(np.rint(values * (255.0 / scale)), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, mode="L")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# --- digests ---------------------------------------------------------------------------------


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with storage.open_read(path) as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def combine_digest(entries: Iterable[tuple[str, str]]) -> str:
    """sha256 over (relative posix path, file sha256 hex) pairs, sorted by path."""
    digest = hashlib.sha256()
    for rel, file_hash in sorted(entries):
        digest.update(f"{rel}\0{file_hash}\n".encode())
    return digest.hexdigest()


def digest_files(files: Iterable[str | os.PathLike], root: str | os.PathLike) -> str:
    """One sha256 naming exactly these files' relative paths and bytes (order does not matter)."""
    base = storage.location(root)
    return combine_digest((relative_posix(storage.location(f), base), file_sha256(f)) for f in files)
