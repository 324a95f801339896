"""The options that commands share, each declared once, and the values they build.

``@render_settings_options(...)`` adds the options that decide the pixels (``--steps``,
``--control``, ``--recipe`` ...) and hands the command one :class:`RenderSettings` as ``render``;
``@runtime_options(...)`` adds ``--device``/``--dtype``/``--batch-size``/``--workers`` and hands it one
:class:`Runtime` as ``runtime`` (with the registry and quietness of the global options). A command
lists the options it takes by name; each is defined here only.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable
from typing import Any

import click
from click.core import ParameterSource

from doge.cli.context import GlobalOptions, control_options
from doge.rendering.geometry import FITS
from doge.rendering.recipes import RECIPES
from doge.rendering.settings import RECIPE_FIELDS  # the settings a --recipe fills in when left at their defaults

Decorator = Callable[[Callable], Callable]


def json_option(help: str = "Machine-readable output.") -> Decorator:
    """``--json``: print JSON for scripts (every listing has it)."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def seed_option(default: int, help: str) -> Decorator:
    # numpy's and torch's generators take seeds from 0 to 2**32 - 1 (what every image seed derives from)
    return click.option("--seed", default=default, show_default=True, type=click.IntRange(0, 2**32 - 1), help=help)


def model_option(help: str = "Stable unCLIP model: HF id or local folder.", envvar: str | None = "DOGE_MODEL"):
    return click.option("--model", envvar=envvar, help=help)


def device_option() -> Decorator:
    return click.option("--device", default="auto", show_default=True, help="cuda, mps, cpu or auto.")


def dtype_option() -> Decorator:
    return click.option("--dtype", default="auto", show_default=True, help="fp16, bf16, fp32 or auto (fp16 on cuda).")


def batch_size_option(default: int, help: str | None = None) -> Decorator:
    return click.option("--batch-size", default=default, show_default=True, type=click.IntRange(min=1), help=help)


def workers_option() -> Decorator:
    return click.option("--workers", type=click.IntRange(min=0), help="Decoding worker processes (default: automatic).")


def ray_option(help: str) -> Decorator:
    """``--ray [ADDRESS]``: bare, a local Ray; ``auto`` or ``ray://HOST:PORT`` joins a cluster."""
    return click.option("--ray", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]", help=help)


def encoding_options(f: Callable) -> Callable:
    """--model, --batch-size, --workers and --device of the commands that encode images with a gap's
    encoder (eval, filter): the command takes ``model`` and one ``runtime``."""
    f = runtime_options("batch_size", "workers", "device", batch_size=32, batch_help="Images per encoder call.")(f)
    return model_option("Model of the gap's encoder (default: the one in its provenance).", envvar=None)(f)


def gathered(into: str, options: Iterable[Decorator], build: Callable[[dict[str, Any]], Any]) -> Decorator:
    """Add the click ``options`` and pass the command, as ``into``, the one value ``build`` makes of
    what they parsed (a dict by parameter name) instead of a parameter per flag. The mechanism
    behind :func:`value_options`, :func:`render_settings_options` and :func:`runtime_options`."""

    def decorate(f: Callable) -> Callable:
        names: list[str] = []

        @functools.wraps(f)
        def command(*args: Any, **kwargs: Any) -> Any:
            kwargs[into] = build({name: kwargs.pop(name) for name in names})
            return f(*args, **kwargs)

        command.__click_params__ = list(getattr(f, "__click_params__", []))  # type: ignore[attr-defined]
        known = len(command.__click_params__)  # type: ignore[attr-defined]
        decorated: Callable = command
        for option in reversed(list(options)):
            decorated = option(decorated)
        added = decorated.__click_params__[known:]  # type: ignore[attr-defined]
        names.extend(param.name for param in added if param.expose_value)
        return decorated

    return decorate


def value_options(cls: type, into: str, *options: Decorator) -> Decorator:
    """Add the click ``options`` (each named for a field of the frozen dataclass ``cls``) and pass
    the command one ``cls`` value, made of them, as ``into``: a command takes a few values, not
    one parameter per flag."""
    gather = gathered(into, options, lambda given: cls(**given))

    def decorate(f: Callable) -> Callable:
        known = len(getattr(f, "__click_params__", []))
        decorated = gather(f)
        added = decorated.__click_params__[known:]  # type: ignore[attr-defined]
        strays = {param.name for param in added if param.expose_value} - {
            field.name for field in dataclasses.fields(cls)
        }
        if strays:
            raise TypeError(f"value_options({cls.__name__}): {sorted(strays)} name no field of it")
        return decorated

    return decorate


# -- what decides the pixels: RenderSettings --------------------------------------------------

RENDER_OPTIONS: dict[str, Decorator] = {
    "model": model_option(),
    "edit_weight": click.option("--edit-weight", default=1.5, show_default=True, help="How far to move along the gap."),
    "sweep": click.option(
        "--sweep", metavar="START:STOP:COUNT", help="One row per source over a range of edit weights, e.g. 0:2:5."
    ),
    "steps": click.option("--steps", default=20, show_default=True, type=click.IntRange(min=1)),
    "guidance": click.option("--guidance", default=5.0, show_default=True, help="Classifier-free guidance scale."),
    "prompt": click.option("--prompt", default="", help="Optional text prompt."),
    "negative_prompt": click.option("--negative-prompt", default="", help="Optional negative prompt."),
    "noise_level": click.option(
        "--noise-level",
        default=0,
        show_default=True,
        type=click.IntRange(min=0),
        help="unCLIP image-embedding noise level.",
    ),
    "controls": click.option(
        "--control",
        "controls",
        multiple=True,
        metavar="NAME",
        help="Control mode (canny, depth, hed, seg, none; repeatable). Default: canny.",
    ),
    "controlnets": click.option(
        "--controlnet",
        "controlnets",
        multiple=True,
        metavar="[CONTROL=]ID_OR_DIR",
        help="ControlNet to use instead of the control's default.",
    ),
    "controlnet_scale": click.option(
        "--controlnet-scale",
        "controlnet_scale",
        multiple=True,
        type=float,
        help="Conditioning scale: one, or one per --control. Default 1.0.",
    ),
    "control_dir": click.option(
        "--control-dir",
        type=click.Path(file_okay=False),
        help="Precomputed control maps, one per source, matched by stem.",
    ),
    "control_start": click.option(
        "--control-start", default=0.0, show_default=True, help="Fraction of steps before ControlNets act."
    ),
    "control_end": click.option(
        "--control-end", default=1.0, show_default=True, help="Fraction of steps after which ControlNets stop."
    ),
    "guess_mode": click.option("--guess-mode", is_flag=True, help="ControlNet guess mode."),
    "control_option": click.option(
        "--control-option",
        "control_option",
        multiple=True,
        metavar="NAME.KEY=VALUE",
        help="An option of a control (repeatable), e.g. canny.low=50; 'doge plugins' lists the controls.",
    ),
    "canny_low": click.option(
        "--canny-low", type=int, help="Canny low threshold at the 224-px CLIP scale (default 100, the paper's)."
    ),
    "canny_high": click.option(
        "--canny-high", type=int, help="Canny high threshold at the 224-px CLIP scale (default 800, the paper's)."
    ),
    "canny_maps": click.option(
        "--canny-maps",
        type=click.Choice(["auto", "paper"]),
        help="auto (default): the paper's edges, placed at the output resolution (none where the paper's map has "
        "none); paper: the paper's map exactly (224-px CLIP crop, normalised and stretched, Canny, Lanczos up; "
        "with --fit crop).",
    ),
    "depth_model": click.option(
        "--depth-model", help="Depth estimator for --control depth (default Intel/dpt-hybrid-midas)."
    ),
    "depth_invert": click.option(
        "--depth-invert",
        is_flag=True,
        default=None,
        help="Depth maps in --control-dir store distance (near = dark): flip them to near = bright, "
        "as the ControlNet expects.",
    ),
    "seg_labels": click.option(
        "--seg-labels",
        metavar="cityscapes|gta5|synthia|ade20k|FILE.json",
        help="Seg maps (--control-dir, or augment's --masks) hold this dataset's label IDs: draw them in "
        "ADE20K colours.",
    ),
    "hed_weights": click.option(
        "--hed-weights",
        type=click.Path(dir_okay=False),
        help="ControlNetHED.pth or .safetensors for --control hed (default: lllyasviel/Annotators' file).",
    ),
    "hed_maps": click.option(
        "--hed-maps",
        type=click.Choice(["auto", "paper"]),
        help="auto (default): HED at the output resolution; paper: the paper's construction "
        "(HED on the 224-px CLIP view at detect resolution 1024, upsampled; use with --fit crop).",
    ),
    "size": click.option(
        "--size",
        default=768,
        show_default=True,
        help="Output side in pixels (with --fit keep: about size x size pixels, each side a multiple of 64).",
    ),
    "fit": click.option(
        "--fit",
        type=click.Choice(FITS),
        default="keep",
        show_default=True,
        help="keep: the source's aspect ratio within 1% at sides that are multiples of 64, a small remainder "
        "cropped or letterboxed (labels carry over); "
        "crop: centre square, the paper's recipe; pad: letterboxed square.",
    ),
    "seed": seed_option(42, "Run seed; each image's seed derives from it, the source and k."),
    "lora": click.option("--lora", type=click.Path(), help="LoRA weights for the UNet."),
    "lora_scale": click.option("--lora-scale", default=1.0, show_default=True, help="LoRA strength (0: no effect)."),
    "recipe": click.option(
        "--recipe",
        type=click.Choice(sorted(RECIPES)),
        help="Named settings in one flag; flags given explicitly win. paper: the DoGE paper's (edit weight "
        "1.5, 20 steps, guidance 5, canny with --canny-maps paper, --fit crop, seed 42, its negative prompt).",
    ),
}

# The flags that are one control's option (``--canny-low`` is ``--control-option canny.low=...``).
CONTROL_ALIASES = {
    "canny_low": ("canny", "low"),
    "canny_high": ("canny", "high"),
    "canny_maps": ("canny", "maps"),
    "depth_model": ("depth", "model"),
    "depth_invert": ("depth", "invert"),
    "seg_labels": ("seg", "labels"),
    "hed_weights": ("hed", "weights"),
    "hed_maps": ("hed", "maps"),
}


def render_settings_options(*names: str) -> Decorator:
    """Add the render options ``names`` (all of :data:`RENDER_OPTIONS` when none are named) and
    pass the command one ``render`` value (:class:`~doge.rendering.settings.RenderSettings`) instead."""
    chosen = names or tuple(RENDER_OPTIONS)
    return gathered(
        "render",
        [RENDER_OPTIONS[name] for name in chosen],
        lambda given: build_render_settings(click.get_current_context(), given),
    )


def build_render_settings(ctx: click.Context, given: dict[str, Any]):
    """The :class:`RenderSettings` of a command's parsed render options (a recipe setting whose flag
    was left at its default is left to the recipe)."""
    from doge.rendering.settings import RenderSettings

    given = dict(given)
    for name in RECIPE_FIELDS:
        if name in given and ctx.get_parameter_source(name) is ParameterSource.DEFAULT:
            given[name] = None
    aliases: dict[str, dict[str, Any]] = {}
    for flag, (control, key) in CONTROL_ALIASES.items():
        if flag in given:
            aliases.setdefault(control, {})[key] = given.pop(flag)
    given["control_options"] = control_options(given.pop("control_option", ()), aliases)
    for name in ("controls", "controlnets"):
        if name in given:
            given[name] = tuple(given[name]) or None
    if "controlnet_scale" in given:
        given["controlnet_scale"] = tuple(given["controlnet_scale"]) or 1.0
    return RenderSettings(**given)


# -- how and where it runs: Runtime -------------------------------------------------------------


def runtime_options(
    *names: str,
    batch_size: int = 4,
    batch_help: str = "Images per pipeline call.",
    ray_help: str = "Run on Ray: bare, a local Ray; 'auto' or ray://HOST:PORT joins a cluster.",
) -> Decorator:
    """Add ``names`` among device, dtype, batch_size, workers and ray, and pass the command one
    ``runtime`` value (:class:`~doge.runtime.Runtime`) holding them, the registry the global options
    name (``--home``, ``--registry``, ``--blobs``; opened when the job needs it) and their ``--quiet``."""
    options = {
        "device": device_option(),
        "dtype": dtype_option(),
        "batch_size": batch_size_option(batch_size, batch_help),
        "workers": workers_option(),
        "ray": ray_option(ray_help),
    }

    def build(given: dict[str, Any]) -> Any:
        from doge.runtime import Runtime

        state = click.get_current_context().find_object(GlobalOptions)
        assert state is not None  # the doge group always sets it
        # the registry opens when the job needs it, after the command's own checks
        return Runtime(
            **given, home=state.home, url=state.registry_url, blobs=state.blob_store, progress=not state.quiet
        )

    return gathered("runtime", [options[name] for name in names], build)
