"""The values a gap is made with beside the runtime: which images of each folder
(:class:`Sampling`) and, for a gap with a text side, its templates (:class:`TextSides`). This
module imports nothing heavy, so the CLI builds them while ``doge gap create --help`` stays quick.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from doge.errors import DogeError, whole


@dataclass(frozen=True)
class Sampling:
    """Which images of each folder a gap is made of: at most ``src_limit``/``tgt_limit`` (drawn
    evenly across classes, with ``seed``); None: all of them."""

    src_limit: int | None = None
    tgt_limit: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name, flag in (("src_limit", "--src-limit"), ("tgt_limit", "--tgt-limit")):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, whole(getattr(self, name), flag, 1))
        object.__setattr__(self, "seed", whole(self.seed, "--seed", 0))


@dataclass(frozen=True)
class TextSides:
    """A gap's text sides: a template a side (``"a pencil sketch of a {}"``) filled with each class
    name (``classes``: "a,b" or a list; ``classes_from``: a folder of class folders), embedded by
    ``text_model`` (default: the CLIP text tower aligned with the image encoder)."""

    src_text: str | None = None
    tgt_text: str | None = None
    classes: str | list[str] | None = None
    classes_from: str | Path | None = None
    text_model: str | None = None

    def __post_init__(self) -> None:
        for name, flag in (("src_text", "--src-text"), ("tgt_text", "--tgt-text"), ("text_model", "--text-model")):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise DogeError(f"{flag} {getattr(self, name)!r}: give text")
        classes = self.classes
        if classes is not None and not (
            isinstance(classes, str) or (isinstance(classes, list | tuple) and all(isinstance(c, str) for c in classes))
        ):
            raise DogeError(f"--classes {classes!r}: give names separated by commas, or a list of names")
