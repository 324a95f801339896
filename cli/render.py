"""``doge render``: generate target-domain images from source images and gaps."""

from __future__ import annotations

import click

from doge.cli.context import echo_json
from doge.cli.options import json_option, render_settings_options, runtime_options


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
@click.option("-n", "--per-source", default=1, show_default=True, type=click.IntRange(min=1), help="Images per source.")
@click.option("--count", type=click.IntRange(min=1), help="Total images instead of -n: cycles through the sources.")
@click.option(
    "--limit", type=click.IntRange(min=1), help="Use at most this many sources (drawn evenly across classes)."
)
@click.option("--grid", is_flag=True, help="Also write OUT/grid/: source | controls | outputs per row.")
@render_settings_options()
@runtime_options(
    "device",
    "dtype",
    "batch_size",
    "ray",
    ray_help="Render on Ray (pip install 'doge[ray]'): bare, a local Ray; 'auto' or ray://HOST:PORT joins a cluster.",
)
@json_option("Print a JSON summary.")
def render(gaps, src, out, per_source, count, limit, grid, render, runtime, as_json):
    """Shift each source image's CLIP embedding by the gap(s) and generate with Stable unCLIP + ControlNet.

    Outputs: OUT/images/<source>_<k>.png, OUT/controls/, OUT/manifest.jsonl (one line an image)
    and, with --grid, OUT/grid/. Rerunning the same command skips finished images.
    With --ray the same images are made by Ray actors (one per GPU, else per CPU).
    """
    from doge.api import render as run_render

    result = run_render(
        list(gaps),
        src,
        out,
        render,
        runtime,
        per_source=per_source,
        count=count,
        limit=limit,
        grid=grid,
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
