"""``doge registry ...``: where the registry is, its schema revision, and upgrading it."""

from __future__ import annotations

import click

from doge.cli.context import echo_json, pass_settings


@click.group()
def registry():
    """The registry itself: info, upgrade."""


@registry.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_settings
def info(settings, as_json):
    """Show the registry's URL (password hidden), schema revision, blob store and counts."""
    from doge.registry import registry_info

    data = registry_info(settings.home, settings.registry_url, settings.blob_store)
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
@pass_settings
def upgrade(settings):
    """Migrate the registry's schema to this doge's revision (one transaction; back up first)."""
    from doge.registry import upgrade_registry

    result = upgrade_registry(settings.home, settings.registry_url)
    if not result["changed"]:
        click.echo(f"{result['url']} is already at schema revision {result['after']}")
    elif result["before"] is None:
        click.echo(f"created a new registry at {result['url']} (schema revision {result['after']})")
    else:
        click.echo(f"upgraded {result['url']} from schema revision {result['before']} to {result['after']}")
