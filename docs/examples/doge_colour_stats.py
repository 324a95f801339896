"""An encoder plugin and its aligned text tower: images embedded as their colour statistics.

The embedding of an image is the mean and standard deviation of each of its red, green and blue
channels (6 numbers), so a gap says how a domain's colours differ: a night domain is darker and
bluer, a sketch domain greyer. No ControlNet can render from it; it is for analysing gaps, as
doge's ``efficientnet-lite0`` encoder is.

Install it as a package whose pyproject.toml says::

    [project.entry-points.doge]
    colour-stats = "doge_colour_stats"
"""

from __future__ import annotations

import torch
from PIL import Image

from doge.plugin import hookimpl

SIDE = 32  # images are compared at this size: colour statistics need no detail


def to_pixels(image: Image.Image) -> torch.Tensor:
    """PIL RGB → a [3, SIDE, SIDE] float tensor in 0..1. A module-level function, so that it
    pickles into the worker processes that decode images."""
    data = torch.frombuffer(bytearray(image.resize((SIDE, SIDE)).tobytes()), dtype=torch.uint8)
    return data.reshape(SIDE, SIDE, 3).permute(2, 0, 1).float() / 255


class ColourStatsEncoder:
    plugin = "colour-stats"  # the name it is registered under
    dim = 6

    def __init__(self, model=None, device=None, dtype=None):
        self.model_id = model or "rgb-mean-std"  # nothing to load: the "model" only names the method
        self.device = "cpu"
        self.dtype = torch.float32

    def describe(self) -> dict:
        """What goes into every gap's provenance: a gap is only applied with the encoder it was made with."""
        return {"plugin": self.plugin, "model": self.model_id, "revision": None, "dim": self.dim, "dtype": "float32"}

    @property
    def preprocessor(self):
        return to_pixels

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] → [B, 6]: per-channel means, then per-channel standard deviations."""
        flat = pixels.flatten(2)
        return torch.cat([flat.mean(2), flat.std(2, correction=0)], dim=1).float().cpu()


COLOURS = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0), "dark": (0.1, 0.1, 0.1)}


class ColourWordsText:
    """A text tower in the same 6-wide space: a text is the mean of the colours it names (flat, so
    no spread). It lets ``doge gap create --tgt-text`` make colour gaps from words."""

    @classmethod
    def for_image_encoder(cls, encoder_provenance, text_model=None, device=None):
        if encoder_provenance["plugin"] != "colour-stats":
            raise ValueError("colour words live in the colour-stats space only")
        return cls()

    def encode(self, texts: list[str]) -> torch.Tensor:
        rows = []
        for text in texts:
            named = [COLOURS[w] for w in text.lower().split() if w in COLOURS] or [(0.5, 0.5, 0.5)]
            rows.append([*torch.tensor(named).mean(0).tolist(), 0.0, 0.0, 0.0])
        return torch.tensor(rows)

    def describe(self) -> dict:
        return {"plugin": "colour-stats", "model": "colour-words", "dim": 6}


@hookimpl
def register_encoders(register):
    register("colour-stats", ColourStatsEncoder)


@hookimpl
def register_text_encoders(register):
    register("colour-stats", ColourWordsText)
