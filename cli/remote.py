"""``doge remote ...``: name other registries to push gaps to and pull gaps from."""

from __future__ import annotations

import click

from doge.cli.context import echo_json, echo_table, pass_doge_options
from doge.cli.options import json_option


@click.group()
def remote():
    """Other registries (a doge home folder, a SQLite file or a PostgreSQL URL) by name."""


@remote.command()
@click.argument("name")
@click.argument("url")
@click.option(
    "--blobs",
    help="Blob store of the remote: a shared folder or an fsspec URL such as s3://bucket/gaps "
    "(default for SQLite: the blobs/ folder beside the database file; required for PostgreSQL).",
)
@pass_doge_options
def add(doge_options, name, url, blobs):
    """Add remote NAME at URL: a doge home folder, sqlite:///path/registry.db or postgresql+psycopg://..."""
    from doge.registry.remotes import add_remote

    r = add_remote(name, url, blobs, home=doge_options.home).to_json()
    click.echo(f"added remote {r['name']}: registry {r['url']}, blobs {r['blobs']}")


@remote.command("list")
@json_option()
@pass_doge_options
def list_(doge_options, as_json):
    """List the remotes (passwords hidden)."""
    from doge.registry.remotes import load_remotes

    remotes = [r.to_json() for r in load_remotes(doge_options.home).values()]
    if as_json:
        echo_json(remotes)
        return
    if not remotes:
        click.echo("no remotes yet: doge remote add team /shared/doge-home")
        return
    echo_table([[r["name"], r["url"], r["blobs"]] for r in remotes], ["NAME", "URL", "BLOBS"])


@remote.command()
@click.argument("name")
@pass_doge_options
def remove(doge_options, name):
    """Forget remote NAME (nothing in it is touched)."""
    from doge.registry.remotes import remove_remote

    remove_remote(name, home=doge_options.home)
    click.echo(f"removed remote {name}")


def open_remote(doge_options, name: str, *, must_exist: bool = True):
    """The registry of remote ``name``."""
    from doge.pluginmanager import forward_gap_events
    from doge.registry.remotes import get_remote, open_registry

    remote = get_remote(name, home=doge_options.home)
    return forward_gap_events(open_registry(remote, home=doge_options.home, must_exist=must_exist))


def report(placements, verb: str, whence: str, where: str, as_json: bool = False) -> None:
    """One line per copied version: what was stored (and as which ref), or that it was there already.

    E.g. ``report(placed, "pushed", "to team", "on team")``.
    """
    if as_json:
        echo_json([p.to_json() for p in placements])
        return
    for p in placements:
        renamed = f" as {p.stored.ref}" if p.stored.ref != p.incoming.ref else ""
        aliases = f"; alias {', '.join(p.incoming.aliases)} set" if p.incoming.aliases else ""
        if p.status == "added":
            click.echo(f"{verb} {p.incoming.ref} {whence}{renamed} (sha256 {p.stored.sha256[:12]}){aliases}")
        else:
            click.echo(f"{p.incoming.ref} is already {where}{renamed}{aliases}")
