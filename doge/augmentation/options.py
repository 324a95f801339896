"""The values ``doge augment`` takes beside the render settings and the runtime: how SRC is read,
how many new images, whether they are filtered and refilled, and how OUT is laid out. Each is
frozen; the CLI builds them from its flags (this module imports nothing heavy, so ``doge augment
--help`` stays quick).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from doge.errors import DogeError, finite, whole

FORMATS = ("imagefolder", "coco", "webdataset", "parquet")
WITH_SOURCES = ("none", "link", "copy")
DEFAULT_SHARD_SIZE = 1_000_000_000
DEFAULT_MAX_TRIES = 3
MAX_RATIO = 1e12  # new images a source; far beyond any budget (a run makes at most a million), short of overflow


@dataclass(frozen=True)
class DatasetInput:
    """How SRC is read: its COCO file and label images, its layout, and a Hugging Face dataset's columns.

    ``input_format`` None: found from SRC (class folders, imagefolder metadata, a Hugging Face dataset).
    """

    annotations: Any = None  # COCO detection/instance JSON
    masks: Any = None  # label images, one per source, matched by stem
    label_column: str = "label"
    input_format: str | None = None
    image_column: str = "image"
    objects_column: str = "objects"
    mask_column: str | None = None
    split: str | None = None


def parse_weights(given: Any) -> tuple[float, ...]:
    """``--weights 1.0,1.5,2.0`` (or a list of numbers) → the edit weights to spread, each finite."""
    fix = "write numbers separated by commas, e.g. 1.0,1.5,2.0"
    texts = given if isinstance(given, list | tuple) else [w for w in str(given).split(",") if w.strip()]
    if not texts:
        raise DogeError(f"--weights {given!r}: {fix}")
    try:
        return tuple(finite(w, "--weights") for w in texts)
    except DogeError:
        raise DogeError(f"--weights {given!r}: {fix}") from None


@dataclass(frozen=True)
class Budget:
    """How many new images: exactly one of ``per_class`` (N a class), ``ratio`` (R a source),
    ``balance`` (every class up to the largest) or ``count`` (N in all, split evenly between classes);
    checked against the dataset's classes (:func:`doge.augmentation.budget.class_targets`).
    ``weights`` (``"1.0,1.5,2.0"`` or a list) spreads edit weights over the images, kept as a tuple of
    floats; None: the render's one."""

    per_class: int | None = None
    ratio: float | None = None
    balance: bool = False
    count: int | None = None
    weights: Any = None

    def __post_init__(self) -> None:
        for name, flag in (("per_class", "--per-class"), ("count", "--count")):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, whole(getattr(self, name), flag, 1))
        if self.ratio is not None and not 0 < finite(self.ratio, "--ratio") <= MAX_RATIO:
            raise DogeError(f"--ratio {self.ratio!r}: give a number above 0, at most {MAX_RATIO:g}")
        if not isinstance(self.balance, bool):
            raise DogeError(f"balance {self.balance!r}: give True or False")
        if self.weights is not None:
            object.__setattr__(self, "weights", parse_weights(self.weights))


@dataclass(frozen=True)
class Refill:
    """``--filter``: score each new image as ``doge filter`` does and replace a rejected one with the
    source's next sample, at most ``max_tries`` samples a slot. ``filter_src``/``filter_tgt``: the
    reference images (default: the gap's own)."""

    filter: bool = False
    min_target_score: float | None = 0.5
    min_source_similarity: float | None = None
    filter_src: Any = None
    filter_tgt: Any = None
    max_tries: int = DEFAULT_MAX_TRIES

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_tries", whole(self.max_tries, "--max-tries", 1))
        if (self.filter_src is None) != (self.filter_tgt is None):
            raise DogeError("give both --ref-src and --ref-tgt reference folders, or neither to use the gap's own")
        for name, flag in (
            ("min_target_score", "--min-target-score"),
            ("min_source_similarity", "--min-source-similarity"),
        ):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, finite(getattr(self, name), flag))


@dataclass(frozen=True)
class Layout:
    """How OUT is written: its format, whether the real images join it, shard size, the COCO file's
    name, and the render work area (default: ``.<OUT>.doge-work`` beside OUT)."""

    output_format: str = "imagefolder"
    with_sources: str = "none"
    shard_size: int = DEFAULT_SHARD_SIZE
    annotations_name: str = "annotations.json"
    work: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shard_size", whole(self.shard_size, "--shard-size", 1))
        if self.output_format not in FORMATS:
            raise DogeError(f"--format {self.output_format!r}: use one of {', '.join(FORMATS)}")
        if self.with_sources not in WITH_SOURCES:
            raise DogeError(f"--with-sources {self.with_sources!r}: use one of {', '.join(WITH_SOURCES)}")
