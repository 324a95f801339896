"""``RenderSettings``: everything that decides a rendered image's pixels, as one frozen value.

A setting left None when the value is made comes from ``recipe`` (``--recipe paper``), else from
:data:`doge.rendering.recipes.DEFAULTS`: the recipe is resolved into the value once, when it is
made, and every field of a made value is final. The CLI builds it from its shared options
(``doge.cli.options``); ``doge.render(gaps, src, out, steps=20)`` builds it from keywords.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from doge.errors import DogeError, finite, whole
from doge.rendering.recipes import resolve_recipe
from doge.runtime import Runtime, fold_keywords

MAX_STEPS = 1000  # a sampler's schedule has at most 1000 training steps
MAX_SIZE = 4096  # pixels a side; SD 2.1 unCLIP is trained at 768, and memory grows with the square
MAX_WEIGHT = 1_000_000  # what the registry's records hold (registry/records.py WEIGHT)

# The settings a recipe may fill in (None: not given).
RECIPE_FIELDS = ("edit_weight", "steps", "guidance", "negative_prompt", "size", "fit", "seed")


@dataclass(frozen=True)
class RenderSettings:
    """What decides the pixels: model, gap weight, sampler, controls, size and fit, seed, LoRA."""

    model: str | None = None  # HF id or local folder; None: $DOGE_MODEL, else SD 2.1 unCLIP
    edit_weight: float = None  # type: ignore[assignment]  # None until resolved from the recipe
    sweep: str | None = None  # "START:STOP:COUNT": one row per source over edit weights
    steps: int = None  # type: ignore[assignment]
    guidance: float = None  # type: ignore[assignment]
    prompt: str = ""
    negative_prompt: str = None  # type: ignore[assignment]
    noise_level: int = 0
    controls: tuple[str, ...] | None = None  # None: canny
    controlnets: tuple[str, ...] | None = None  # "[CONTROL=]ID_OR_DIR" overrides
    controlnet_scale: float | tuple[float, ...] = 1.0
    control_dir: Any = None
    control_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    control_start: float = 0.0
    control_end: float = 1.0
    guess_mode: bool = False
    size: int = None  # type: ignore[assignment]
    fit: str = None  # type: ignore[assignment]
    seed: int = None  # type: ignore[assignment]
    lora: str | None = None
    lora_scale: float = 1.0
    recipe: str | None = None  # the named settings the others were filled from

    def __post_init__(self) -> None:
        given = {name: getattr(self, name) for name in RECIPE_FIELDS}
        chosen, control_options = resolve_recipe(self.recipe, given, self.control_options)
        for name, value in chosen.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "control_options", control_options)
        for name in ("controls", "controlnets"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value) if not isinstance(value, str) else (value,))
        if isinstance(self.controlnet_scale, list):
            object.__setattr__(self, "controlnet_scale", tuple(self.controlnet_scale))
        self._check_numbers()

    def _check_numbers(self) -> None:
        """Whole numbers whole, the others finite and in a range the pipeline and the records hold;
        a wrong type is one line naming its flag (the CLI's click types check the same)."""
        for name, flag, least, most in (
            ("steps", "--steps", 1, MAX_STEPS),
            ("size", "--size", 0, MAX_SIZE),
            ("noise_level", "--noise-level", 0, 1000),
            ("seed", "--seed", 0, 2**32 - 1),
        ):
            value = whole(getattr(self, name), flag, least)
            if value > most:
                raise DogeError(f"{flag} {value}: use at most {most}")
            object.__setattr__(self, name, value)
        if self.size < 64 or self.size % 8:
            raise DogeError(f"--size {self.size}: use a multiple of 8, at least 64 (768 for SD 2.1 unCLIP)")
        for name, flag in (
            ("edit_weight", "--edit-weight"),
            ("guidance", "--guidance"),
            ("lora_scale", "--lora-scale"),
            ("control_start", "--control-start"),
            ("control_end", "--control-end"),
        ):
            number = finite(getattr(self, name), flag)
            if abs(number) > MAX_WEIGHT:
                raise DogeError(f"{flag} {number:g}: use a number from {-MAX_WEIGHT:g} to {MAX_WEIGHT:g}")
            object.__setattr__(self, name, number)
        for name, flag in (("prompt", "--prompt"), ("negative_prompt", "--negative-prompt")):
            if not isinstance(getattr(self, name), str):
                raise DogeError(f"{flag} {getattr(self, name)!r}: give text")


def settings_from_keywords(
    settings: RenderSettings | None, runtime: Runtime | None, options: dict[str, Any], what: str
) -> tuple[RenderSettings, Runtime]:
    """``options`` (``steps=20``, ``device="cpu"``: any field of either value) folded into ``settings``
    and ``runtime`` (or the defaults); a keyword that names neither is refused in one line.

    A keyword replaces that field of a ``settings`` already made: its recipe was resolved when it
    was made, so ``recipe=`` here fills only the settings neither value gives.
    """
    folded_settings, folded_runtime = fold_keywords(what, options, (RenderSettings, settings), (Runtime, runtime))
    return folded_settings, folded_runtime
