"""``doge render``: generate target-domain images from source images and gaps."""

from __future__ import annotations

import click
from click.core import ParameterSource

from doge.cli.context import control_options, echo_json, pass_settings
from doge.rendering.geometry import FITS
from doge.rendering.recipes import RECIPES

# The settings a --recipe fills in when their flags are not given.
_RECIPE_SETTINGS = ("edit_weight", "steps", "guidance", "negative_prompt", "size", "fit", "seed")


@click.command()
@click.option(
    "--gap",
    "gaps",
    multiple=True,
    required=True,
    metavar="REF[:WEIGHT]",
    help="Gap to apply; repeat to add gaps (gap arithmetic), e.g. --gap 'real->painting@v2' --gap 'day->night:0.5'.",
)
@click.option("--src", required=True, type=click.Path(), help="Folder of source images (or of class folders).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder (resumable).")
@click.option("--model", envvar="DOGE_MODEL", help="Stable unCLIP model: HF id or local folder.")
@click.option("-n", "--per-source", default=1, show_default=True, type=click.IntRange(min=1), help="Images per source.")
@click.option("--count", type=click.IntRange(min=1), help="Total images instead of -n: cycles through the sources.")
@click.option("--edit-weight", default=1.5, show_default=True, help="How far to move along the gap.")
@click.option(
    "--sweep", metavar="START:STOP:COUNT", help="One row per source over a range of edit weights, e.g. 0:2:5."
)
@click.option("--steps", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--guidance", default=5.0, show_default=True, help="Classifier-free guidance scale.")
@click.option("--prompt", default="", help="Optional text prompt.")
@click.option("--negative-prompt", default="", help="Optional negative prompt.")
@click.option(
    "--noise-level",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="unCLIP image-embedding noise level.",
)
@click.option(
    "--control",
    "controls",
    multiple=True,
    metavar="NAME",
    help="Control mode (canny, depth, hed, seg, none; repeatable). Default: canny.",
)
@click.option(
    "--controlnet",
    "controlnets",
    multiple=True,
    metavar="[CONTROL=]ID_OR_DIR",
    help="ControlNet to use instead of the control's default.",
)
@click.option(
    "--controlnet-scale",
    "controlnet_scales",
    multiple=True,
    type=float,
    help="Conditioning scale: one, or one per --control. Default 1.0.",
)
@click.option(
    "--control-dir", type=click.Path(file_okay=False), help="Precomputed control maps, one per source, matched by stem."
)
@click.option("--control-start", default=0.0, show_default=True, help="Fraction of steps before ControlNets act.")
@click.option("--control-end", default=1.0, show_default=True, help="Fraction of steps after which ControlNets stop.")
@click.option("--guess-mode", is_flag=True, help="ControlNet guess mode.")
@click.option(
    "--control-option",
    "control_option_texts",
    multiple=True,
    metavar="NAME.KEY=VALUE",
    help="An option of a control (repeatable), e.g. canny.low=50; 'doge plugins' lists the controls.",
)
@click.option("--canny-low", type=int, help="Canny low threshold at the 224-px CLIP scale (default 100, the paper's).")
@click.option(
    "--canny-high", type=int, help="Canny high threshold at the 224-px CLIP scale (default 800, the paper's)."
)
@click.option(
    "--canny-maps",
    type=click.Choice(["auto", "paper"]),
    help="auto (default): the paper's edges, placed at the output resolution (none where the paper's map has none); "
    "paper: the paper's map exactly (224-px CLIP crop, normalised and stretched, Canny, Lanczos up; with --fit crop).",
)
@click.option("--depth-model", help="Depth estimator for --control depth (default Intel/dpt-hybrid-midas).")
@click.option(
    "--depth-invert",
    is_flag=True,
    default=None,
    help="Depth maps in --control-dir store distance (near = dark): flip them to near = bright, as the ControlNet expects.",
)
@click.option(
    "--seg-labels",
    metavar="cityscapes|gta5|synthia|ade20k|FILE.json",
    help="Seg maps in --control-dir hold this dataset's label IDs: draw them in ADE20K colours.",
)
@click.option(
    "--hed-weights",
    type=click.Path(dir_okay=False),
    help="ControlNetHED.pth or .safetensors for --control hed (default: lllyasviel/Annotators' file).",
)
@click.option(
    "--hed-maps",
    type=click.Choice(["auto", "paper"]),
    help="auto (default): HED at the output resolution; paper: the paper's construction "
    "(HED on the 224-px CLIP view at detect resolution 1024, upsampled; use with --fit crop).",
)
@click.option(
    "--size",
    default=768,
    show_default=True,
    help="Output side in pixels (with --fit keep: about size x size pixels, each side a multiple of 64).",
)
@click.option(
    "--fit",
    type=click.Choice(FITS),
    default="keep",
    show_default=True,
    help="keep: the source's aspect ratio within 1% at sides that are multiples of 64, a small remainder "
    "cropped or letterboxed (labels carry over); "
    "crop: centre square, the paper's recipe; pad: letterboxed square.",
)
@click.option(
    "--seed", default=42, show_default=True, help="Run seed; each image's seed derives from it, the source and k."
)
@click.option(
    "--batch-size", default=4, show_default=True, type=click.IntRange(min=1), help="Images per pipeline call."
)
@click.option(
    "--limit", type=click.IntRange(min=1), help="Use at most this many sources (drawn evenly across classes)."
)
@click.option("--grid", is_flag=True, help="Also write OUT/grid/: source | controls | outputs per row.")
@click.option("--lora", type=click.Path(), help="LoRA weights for the UNet.")
@click.option("--lora-scale", default=1.0, show_default=True, help="LoRA strength (0: no effect).")
@click.option("--device", default="auto", show_default=True, help="cuda, mps, cpu or auto.")
@click.option("--dtype", default="auto", show_default=True, help="fp16, bf16, fp32 or auto (fp16 on cuda).")
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="local",
    default=None,
    metavar="[ADDRESS]",
    help="Render on Ray (pip install 'doge[ray]'): bare, a local Ray; 'auto' or ray://HOST:PORT joins a cluster.",
)
@click.option(
    "--recipe",
    type=click.Choice(sorted(RECIPES)),
    help="Named settings in one flag; flags given explicitly win. paper: the DoGE paper's "
    "(edit weight 1.5, 20 steps, guidance 5, canny with --canny-maps paper, --fit crop, seed 42, its negative prompt).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@pass_settings
def render(
    settings,
    gaps,
    src,
    out,
    model,
    per_source,
    count,
    edit_weight,
    sweep,
    steps,
    guidance,
    prompt,
    negative_prompt,
    noise_level,
    controls,
    controlnets,
    controlnet_scales,
    control_dir,
    control_start,
    control_end,
    guess_mode,
    control_option_texts,
    canny_low,
    canny_high,
    canny_maps,
    depth_model,
    depth_invert,
    seg_labels,
    hed_weights,
    hed_maps,
    size,
    fit,
    seed,
    batch_size,
    limit,
    grid,
    lora,
    lora_scale,
    device,
    dtype,
    ray_address,
    recipe,
    as_json,
):
    """Shift each source image's CLIP embedding by the gap(s) and generate with Stable unCLIP + ControlNet.

    Outputs: OUT/images/<source>_<k>.png, OUT/controls/, OUT/manifest.jsonl (one line an image)
    and, with --grid, OUT/grid/. Rerunning the same command skips finished images.
    With --ray the same images are made by Ray actors (one per GPU, else per CPU).
    """
    from doge.api import render as run_render

    # A flag left at its default leaves the setting to --recipe (None: the recipe's, else the default).
    ctx = click.get_current_context()
    unset = {name for name in _RECIPE_SETTINGS if ctx.get_parameter_source(name) is ParameterSource.DEFAULT}
    edit_weight, steps, guidance, negative_prompt, size, fit, seed = (
        None if name in unset else value
        for name, value in zip(
            _RECIPE_SETTINGS, (edit_weight, steps, guidance, negative_prompt, size, fit, seed), strict=True
        )
    )
    result = run_render(
        list(gaps),
        src,
        out,
        model=model,
        per_source=per_source,
        count=count,
        edit_weight=edit_weight,
        sweep=sweep,
        steps=steps,
        guidance=guidance,
        prompt=prompt,
        negative_prompt=negative_prompt,
        noise_level=noise_level,
        controls=list(controls) or None,
        controlnets=list(controlnets) or None,
        controlnet_scale=list(controlnet_scales) or 1.0,
        control_dir=control_dir,
        control_options=control_options(
            control_option_texts,
            {
                "canny": {"low": canny_low, "high": canny_high, "maps": canny_maps},
                "depth": {"model": depth_model, "invert": depth_invert},
                "seg": {"labels": seg_labels},
                "hed": {"weights": hed_weights, "maps": hed_maps},
            },
        ),
        control_start=control_start,
        control_end=control_end,
        guess_mode=guess_mode,
        size=size,
        fit=fit,
        seed=seed,
        batch_size=batch_size,
        limit=limit,
        grid=grid,
        lora=lora,
        lora_scale=lora_scale,
        device=device,
        dtype=dtype,
        ray=ray_address,
        recipe=recipe,
        registry=settings.registry(),
        progress=not settings.quiet,
    )
    if as_json:
        echo_json(
            {
                "out": str(result.out),
                "written": result.written,
                "skipped": result.skipped,
                "manifest": str(result.manifest),
                "grids": [str(g) for g in result.grids],
            }
        )
        return
    click.echo(
        f"wrote {len(result.written)} images to {result.out / 'images'}"
        + (f" ({result.skipped} already there)" if result.skipped else "")
    )
    click.echo(f"manifest: {result.manifest}")
    for sheet in result.grids:
        click.echo(f"grid: {sheet}")
