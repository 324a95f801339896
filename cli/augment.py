"""``doge augment``: turn a labelled training set into a bigger one in the target domain."""

from __future__ import annotations

import re

import click

from doge.augmentation.options import FORMATS, WITH_SOURCES, Budget, DatasetInput, Layout, Refill
from doge.cli.context import echo_json, echo_table
from doge.cli.options import json_option, render_settings_options, runtime_options, value_options

_UNITS = {"": 1, "B": 1, "K": 10**3, "KB": 10**3, "M": 10**6, "MB": 10**6, "G": 10**9, "GB": 10**9}


def _bytes(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?B?)\s*", str(value).upper())
    if not match:
        raise click.BadParameter("write a size such as 500MB or 1GB")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


@click.command()
@click.argument("src", type=click.Path(file_okay=False))
@click.option(
    "--gap",
    "gaps",
    multiple=True,
    required=True,
    metavar="REF[:W][+REF[:W]]",
    help="Gap; repeat to split the budget between gaps, join with '+' to add gaps, e.g. --gap 'real->painting@prod'.",
)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output dataset folder (resumable).")
@value_options(
    DatasetInput,
    "reading",
    click.option("--annotations", type=click.Path(dir_okay=False), help="COCO detection/instance JSON for SRC."),
    click.option("--masks", type=click.Path(file_okay=False), help="Label images, one per source, matched by stem."),
    click.option(
        "--label-column",
        default="label",
        show_default=True,
        help="Label column of an imagefolder's metadata or an HF dataset.",
    ),
    click.option("--image-column", default="image", show_default=True, help="Image column of a Hugging Face dataset."),
    click.option(
        "--objects-column",
        default="objects",
        show_default=True,
        help="COCO-style objects column (bbox, category) of a Hugging Face dataset.",
    ),
    click.option("--mask-column", help="Label-image column of a Hugging Face segmentation dataset."),
    click.option("--split", help="Split of a Hugging Face dataset saved with several (default: train)."),
)
@value_options(
    Layout,
    "layout",
    click.option(
        "--format",
        "output_format",
        type=click.Choice(FORMATS),
        default="imagefolder",
        show_default=True,
        help="parquet: typed shards (ClassLabel labels, COCO-style objects) that datasets loads as they are.",
    ),
    click.option(
        "--with-sources",
        type=click.Choice(WITH_SOURCES),
        default="none",
        show_default=True,
        help="Put the real images in OUT too (a whole training set).",
    ),
    click.option(
        "--shard-size", default="1GB", callback=_bytes, show_default=True, help="webdataset, parquet: bytes a shard."
    ),
    click.option(
        "--work", type=click.Path(file_okay=False), help="Render work area (default: .OUT.doge-work beside OUT)."
    ),
)
@value_options(
    Budget,
    "budget",
    click.option("--per-class", type=int, help="N new images for every class."),
    click.option("--ratio", type=float, help="R new images per source."),
    click.option("--balance", is_flag=True, help="Fill every class up to the largest one."),
    click.option("--count", type=int, help="N new images in all, split evenly between classes."),
    click.option("--weights", help="Edit weights to spread over the images, e.g. 1.0,1.5,2.0."),
)
@value_options(
    Refill,
    "refill",
    click.option("--filter", "filter", is_flag=True, help="Score images as `doge filter` does; replace rejects."),
    click.option("--min-target-score", default=0.5, show_default=True, help="Filter: least target-domain score."),
    click.option("--min-source-similarity", type=float, help="Filter: least cosine to the source image."),
    click.option(
        "--ref-src", "filter_src", type=click.Path(file_okay=False), help="Filter: source-domain reference images."
    ),
    click.option(
        "--ref-tgt", "filter_tgt", type=click.Path(file_okay=False), help="Filter: target-domain reference images."
    ),
    click.option("--max-tries", default=3, show_default=True, help="Filter: samples tried per image before giving up."),
)
@click.option("--dry-run", is_flag=True, help="Print the plan (counts per class and gap); load no model.")
@render_settings_options(
    "model",
    "edit_weight",
    "steps",
    "guidance",
    "prompt",
    "controls",
    "controlnets",
    "control_option",
    "seg_labels",
    "size",
    "fit",
    "seed",
)
@runtime_options("device", "dtype", "batch_size", "ray", ray_help="Render on Ray: a local Ray, or a cluster.")
@json_option("Print the JSON summary.")
def augment(src, gaps, out, reading, layout, budget, refill, dry_run, render, runtime, as_json):
    """Augment the labelled training set SRC with images moved along the gap(s).

    SRC is class folders, an imagefolder (metadata.jsonl/csv), with --annotations COCO, or a Hugging
    Face dataset (a save_to_disk folder, or a folder of Parquet shards). SRC, --out, --annotations
    and --masks may be fsspec URLs (s3://bucket/train, gs://..., hf://datasets/...).
    Rerunning the same command makes only what is missing.
    """
    from doge.api import augment as run_augment

    summary = run_augment(
        src,
        list(gaps),
        out,
        reading=reading,
        budget=budget,
        refill=refill,
        layout=layout,
        settings=render,
        runtime=runtime,
        dry_run=dry_run,
    )
    if as_json:
        echo_json(summary)
        return
    if summary.get("dry_run"):
        rows = [[label or "(none)", c["sources"], c["asked"]] for label, c in summary["per_class"].items()]
        echo_table([[str(x) for x in r] for r in rows], ["class", "sources", "new images"])
        for gap, n in summary["per_gap"].items():
            click.echo(f"gap {gap}: {n} images")
        click.echo(f"{summary['planned']} images planned; nothing rendered (--dry-run)")
        return
    rows = [
        [label or "(none)", c["sources"], c["skipped"], c["asked"], c["made"], c["rejected"], c["short"]]
        for label, c in summary["classes"].items()
    ]
    header = ["class", "sources", "skipped", "asked", "made", "rejected", "short"]
    echo_table([[str(x) for x in r] for r in rows], header)
    for skipped in summary["skipped_sources"]:
        click.echo(f"skipped {skipped['file']}: {skipped['reason']}")
    if summary.get("dropped_annotations"):
        click.echo(f"dropped {summary['dropped_annotations']} annotations left with no area after the geometry")
    click.echo(
        f"{summary['images']} images in {summary['out']} ({summary['format']}); "
        f"rendered {summary['written']} now, {summary['skipped']} already there"
    )
    click.echo(f"card: {summary['card']}")
