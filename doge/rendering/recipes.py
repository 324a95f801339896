"""``--recipe NAME``: named sets of render settings, and the defaults a render falls back on.

Plain data (the CLI reads it on its fast path): a setting given explicitly wins over the
recipe, and one given by neither comes from :data:`DEFAULTS`.
"""

from __future__ import annotations

from doge.errors import DogeError

# What a render uses for a setting neither the caller nor a recipe gives.
DEFAULTS: dict = {
    "edit_weight": 1.5,
    "steps": 20,
    "guidance": 5.0,
    "negative_prompt": "",
    "size": 768,
    "fit": "keep",
    "seed": 42,
}

# The DoGE paper's negative prompt (its README's generate.py command).
PAPER_NEGATIVE_PROMPT = (
    "blurry, blurred, ambiguous, blending, opaque, translucent, layering, shading, mixing, ugly, tiling, "
    "poorly drawn face, out of frame, mutation, disfigured, deformed, blurry, bad art, bad anatomy, text, "
    "watermark, grainy, underexposed, unreal architecture, unreal sky, weird colors"
)

# --recipe NAME: a set of settings in one flag; a setting given explicitly wins over the recipe.
RECIPES: dict[str, dict] = {
    "paper": {
        "edit_weight": 1.5,
        "steps": 20,
        "guidance": 5.0,
        "negative_prompt": PAPER_NEGATIVE_PROMPT,
        "size": 768,
        "fit": "crop",
        "seed": 42,
        "control_options": {"canny": {"maps": "paper", "low": 100, "high": 800}},
    },
}


def resolve_recipe(recipe: str | None, given: dict, control_options: dict | None) -> tuple[dict, dict]:
    """(settings, control options): each of ``given`` that is None taken from the recipe, else DEFAULTS."""
    if recipe is not None and recipe not in RECIPES:
        raise DogeError(f"--recipe {recipe!r}: use one of {', '.join(RECIPES)}, or no recipe")
    chosen = RECIPES.get(recipe or "", {})
    settings = {k: v if v is not None else chosen.get(k, DEFAULTS[k]) for k, v in given.items()}
    options = {name: dict(values) for name, values in chosen.get("control_options", {}).items()}
    for name, values in (control_options or {}).items():
        merged = options.setdefault(name, {})
        merged.update({k: v for k, v in values.items() if v is not None})
    return settings, options
