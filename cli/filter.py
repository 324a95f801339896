"""``doge filter``: score rendered images and mark the rejected ones in their manifest."""

from __future__ import annotations

import click

from doge.cli.context import echo_json
from doge.cli.options import encoding_options, json_option


@click.command("filter")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--gap", "gap_ref", help="Gap to judge with (default: the one the images were rendered with).")
@click.option(
    "--src",
    type=click.Path(),
    help="Reference source images (default: the gap's own folder); the manifest's sources are read only inside it.",
)
@click.option("--tgt", type=click.Path(), help="Reference target images (default: the gap's own folder).")
@click.option(
    "--min-target-score",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="Reject images whose probability of being target-domain is below this.",
)
@click.option(
    "--min-source-similarity",
    type=click.FloatRange(-1, 1),
    help="Reject images whose cosine to their source is below this (default: not checked).",
)
@click.option("--delete", is_flag=True, help="Delete rejected image files too (their manifest lines stay).")
@encoding_options
@json_option("Print the summary as JSON.")
def filter_(out, gap_ref, src, tgt, min_target_score, min_source_similarity, delete, model, runtime, as_json):
    """Score rendered images in OUT and mark the rejected ones in OUT/manifest.jsonl."""
    from doge.quality.filtering import filter_outputs

    result = filter_outputs(
        out,
        gap_ref,
        src=src,
        tgt=tgt,
        min_target_score=min_target_score,
        min_source_similarity=min_source_similarity,
        delete=delete,
        model=model,
        runtime=runtime,
    )
    if as_json:
        echo_json(result)
        return
    click.echo(
        f"scored {result['scored']} images in {result['out']} with {result['gap']}: "
        f"kept {result['kept']}, rejected {result['rejected']}"
        + (f", deleted {result['deleted']} files" if delete else "")
        + (
            f"; {result['unscored']} listed images were not scored (missing or unreadable)"
            if result["unscored"]
            else ""
        )
    )
    for image in result["rejected_images"][:20]:
        click.echo(f"  rejected {image}")
    if len(result["rejected_images"]) > 20:
        click.echo(f"  ... and {len(result['rejected_images']) - 20} more (--json lists all)")
    click.echo(f'verdicts are in {result["manifest"]} (each line\'s "filter")')
