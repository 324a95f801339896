"""The Control interface: a source image in, a ControlNet conditioning image out.

A control either computes its map from the source image (edges, depth) or reads a
precomputed one from ``control_dir``, matched to the source by file stem. Maps are made at
the output resolution, laid out over the source as the output is (``--fit``, see
:mod:`doge.rendering.geometry`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageOps

from doge.errors import DogeError
from doge.rendering.geometry import Geometry

if TYPE_CHECKING:  # numpy is imported where a map is computed
    import numpy as np

# Lossless formats first: when a folder holds both a.png and a.jpg, a.png is the map.
MAP_SUFFIXES = (".png", ".tif", ".tiff", ".bmp", ".webp", ".jpg", ".jpeg")

# Modes wider than 8 bits per pixel (16-bit PNG, float TIFF), common for saved depth maps.
_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


class Control:
    """Base class of the control modes that ``render`` can use.

    Subclasses set ``name``, ``default_controlnet``, ``defaults`` (their options and default
    values) and implement :meth:`compute`; everything about ``control_dir`` lives here.
    """

    name: str = ""
    default_controlnet: str | None = None
    uses_controlnet: bool = True
    defaults: dict[str, Any] = {}
    # How a precomputed map is resized to the output size.
    map_resample: Image.Resampling = Image.Resampling.BILINEAR
    # Stretch 16-bit / float maps to 0..255 (right for depth; wrong for label maps).
    stretch_wide_maps: bool = True

    def __init__(self, control_dir: str | Path | None = None, device: str = "cpu", **options: Any):
        self.control_dir = Path(control_dir).expanduser() if control_dir is not None else None
        self.device = device
        self.options = self._resolve_options(options)
        if self.control_dir is not None and not self.control_dir.is_dir():
            raise DogeError(f"--control-dir {self.control_dir} is not a folder; pass the folder that holds the maps")

    def _resolve_options(self, options: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise DogeError(f"the {self.name} control has no option {', '.join(unknown)}; its options: {known}")
        # None means "not given" so a CLI can pass every flag through unchanged.
        return {key: options[key] if options.get(key) is not None else value for key, value in self.defaults.items()}

    def make(
        self, image: Image.Image, size: tuple[int, int], source_path: str | Path, geometry: Geometry | None = None
    ) -> Image.Image | None:
        """The conditioning image for ``image`` (RGB), ``size`` = (width, height) of the output.

        With ``geometry`` (how the output lies over the source: ``--fit``), the map is laid out
        exactly as the output: the source, or a map from ``control_dir``, is cropped, scaled or
        letterboxed the same way, so a pixel of the map and of the output show the same place.
        Without it the source is stretched to ``size``.
        """
        if self.control_dir is not None:
            return self.read_map(source_path, size, geometry)
        image = image.convert("RGB")
        if geometry is None:
            return self.compute(image, size)
        if geometry.pad is None:
            return self.compute(geometry.apply(image, Image.Resampling.LANCZOS), geometry.output_size)
        # Letterboxed: the map is made from the picture alone (bars are no scene), then padded black.
        picture = geometry.picture_size()
        made = self.compute(image.resize(picture, Image.Resampling.LANCZOS, box=geometry.box()), picture)
        return letterbox(made, geometry) if made is not None else None

    def compute(self, image: Image.Image, size: tuple[int, int]) -> Image.Image | None:
        raise NotImplementedError

    # What to change when a computed map comes out (almost) empty; see is_empty.
    empty_hint: str = "check the source image"

    def is_empty(self, made: Image.Image) -> bool:
        """The map holds (almost) nothing for a ControlNet to follow; here: a single flat value."""
        extrema = made.getextrema()  # (low, high) for one band, one such pair per band for several
        pairs = extrema if isinstance(extrema[0], tuple) else (extrema,)
        return all(pair[0] == pair[1] for pair in pairs)  # type: ignore[index]

    def empty_advice(self) -> str:
        if self.control_dir is not None:
            return f"check its map in {self.control_dir}"
        return self.empty_hint

    def describe(self) -> dict[str, Any]:
        """What went into the maps, for the render manifest."""
        return {
            "name": self.name,
            "options": dict(self.options),
            "control_dir": str(self.control_dir) if self.control_dir is not None else None,
        }

    def resolve_controlnet(self, controlnet: str | None = None) -> str | None:
        """The ControlNet to load: the user's, else this control's default."""
        if not self.uses_controlnet:
            if controlnet:
                raise DogeError(
                    f"--control {self.name} uses no ControlNet; drop --controlnet or pick another --control"
                )
            return None
        if controlnet:
            return controlnet
        if self.default_controlnet is None:
            raise DogeError(
                f"the {self.name} control has no default ControlNet: pass --controlnet with the id or "
                f"folder of a Stable Diffusion 2.1 {self.name} ControlNet"
            )
        return self.default_controlnet

    def find_map(self, source_path: str | Path) -> Path:
        if self.control_dir is None:
            raise DogeError(f"the {self.name} control was given no --control-dir to find maps in")
        stem = Path(source_path).stem
        candidates = {
            p.suffix.lower(): p
            for p in self.control_dir.glob(f"{_glob_escape(stem)}.*")
            if p.is_file() and p.stem == stem
        }
        for suffix in MAP_SUFFIXES:
            if suffix in candidates:
                return candidates[suffix]
        raise DogeError(
            f"no control map for {Path(source_path).name} in {self.control_dir}: "
            f"add {stem}.png (or .jpg) there, or drop --control-dir to compute maps"
        )

    def read_map(self, source_path: str | Path, size: tuple[int, int], geometry: Geometry | None = None) -> Image.Image:
        """The map for ``source_path`` from ``control_dir``, laid out as the output (see :meth:`make`).

        A map is taken to cover the whole source: one of another size is first stretched over it.
        """
        path = self.find_map(source_path)
        try:
            with Image.open(path) as opened:
                opened.load()
                img = ImageOps.exif_transpose(opened)
        except (OSError, ValueError) as exc:
            raise DogeError(f"control map {path} could not be read ({exc}); replace or remove it") from exc
        if geometry is not None:
            return geometry.apply(self._to_rgb(img), self.map_resample)
        return self._to_rgb(img).resize((size[0], size[1]), self.map_resample)

    def _to_rgb(self, img: Image.Image) -> Image.Image:
        if img.mode in _WIDE_MODES and self.stretch_wide_maps:
            return stretch_to_8bit(img).convert("RGB")
        # Palette and grayscale label maps keep their colours through RGB conversion.
        return img.convert("RGB")


def letterbox(picture: Image.Image, geometry: Geometry) -> Image.Image:
    """A map of the picture alone placed on the output with black bars (``pad``), or itself without."""
    if geometry.pad is None:
        return picture
    canvas = Image.new(picture.mode, geometry.output_size, 0)
    canvas.paste(picture, geometry.pad[:2])
    return canvas


def stretch_to_8bit(img: Image.Image) -> Image.Image:
    """A wide (16-bit / float) grayscale image scaled so its own range becomes 0..255."""
    import numpy as np

    values = np.asarray(img, dtype=np.float64)
    return Image.fromarray(to_uint8(values))


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Min–max normalise an array to uint8; a flat array becomes all zeros."""
    import numpy as np

    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values - low) / (high - low) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def gray_to_rgb(gray) -> Image.Image:
    """An HxW uint8 array as an RGB image with the value in all three channels."""
    return Image.fromarray(gray).convert("RGB")


def _glob_escape(text: str) -> str:
    from glob import escape

    return escape(text)
