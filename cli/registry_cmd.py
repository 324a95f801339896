"""``doge registry ...``: where the registry is, its schema revision, and upgrading it."""

from __future__ import annotations

import click

from doge.cli.context import echo_json, pass_doge_options
from doge.cli.options import json_option


@click.group()
def registry():
    """The registry itself: info, upgrade, check, gc."""


@registry.command()
@json_option()
@pass_doge_options
def info(doge_options, as_json):
    """Show the registry's URL (password hidden), schema revision, blob store and counts."""
    from doge.registry import registry_info

    data = registry_info(doge_options.home, doge_options.registry_url, doge_options.blob_store)
    if as_json:
        echo_json(data)
        return
    revision = data["schema_revision"] or "none yet (empty)"
    state = "" if data["up_to_date"] else f"  (this doge needs {data['head_revision']}: run 'doge registry upgrade')"
    click.echo(f"url: {data['url']}")
    click.echo(f"backend: {data['backend']}")
    click.echo(f"schema revision: {revision}{state}")
    click.echo(f"blob store: {data['blob_store']}")
    click.echo("counts: " + ", ".join(f"{k} {v}" for k, v in data["counts"].items()))


@registry.command()
@pass_doge_options
def upgrade(doge_options):
    """Migrate the registry's schema to this doge's revision (one transaction; back up first)."""
    from doge.registry import upgrade_registry

    result = upgrade_registry(doge_options.home, doge_options.registry_url)
    if not result["changed"]:
        click.echo(f"{result['url']} is already at schema revision {result['after']}")
    elif result["before"] is None:
        click.echo(f"created a new registry at {result['url']} (schema revision {result['after']})")
    else:
        click.echo(f"upgraded {result['url']} from schema revision {result['before']} to {result['after']}")


@registry.command()
@json_option()
@pass_doge_options
def check(doge_options, as_json):
    """Check every version's blob (present, sha256, readable, width) and every alias; list the
    blobs nothing refers to. Exits 1 if anything is damaged. Changes nothing."""
    from doge.registry.fsck import check as check_registry

    report = check_registry(doge_options.registry())
    if as_json:
        echo_json(report.to_json())
    else:
        for problem in report.problems:
            click.echo(f"DAMAGED {problem['ref']}: {problem['message']}")
        click.echo(
            f"checked {report.versions} versions, {report.blobs} blobs in {report.blob_store}: "
            + ("no damage" if report.ok else f"{len(report.problems)} problems")
        )
        if report.unreferenced or report.leftovers:
            click.echo(
                f"{len(report.unreferenced)} blobs nothing refers to and {len(report.leftovers)} temp files of "
                "interrupted writes: 'doge registry gc --dry-run' shows what it would remove"
            )
    if not report.ok:
        raise SystemExit(1)


@registry.command()
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option(
    "--grace",
    "grace_minutes",
    type=click.FloatRange(min=0),
    default=60,
    show_default=True,
    help="Keep unreferenced blobs younger than this many minutes (a create may be about to commit its row).",
)
@json_option()
@pass_doge_options
def gc(doge_options, dry_run, grace_minutes, as_json):
    """Remove blobs no version refers to (after 'gap rm', an interrupted push or import), and
    temp files of interrupted writes; safe beside a create running at the same time."""
    from doge.registry.fsck import gc as collect

    result = collect(doge_options.registry(), dry_run=dry_run, grace_s=grace_minutes * 60)
    if as_json:
        echo_json(result)
        return
    verb = "would remove" if dry_run else "removed"
    for blob in result["removed"]:
        click.echo(f"{verb} {blob['where']}")
    for leftover in result["leftovers_removed"]:
        click.echo(f"{verb} {leftover['where']}")
    click.echo(
        f"{verb} {len(result['removed'])} unreferenced blobs and {len(result['leftovers_removed'])} temp files; "
        f"kept {len(result['kept_young'])} younger than {grace_minutes:g} minutes"
    )
