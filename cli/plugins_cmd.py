"""``doge plugins``: what is loaded and from where."""

from __future__ import annotations

import click

from doge.cli.context import echo_json, echo_table
from doge.cli.options import json_option


def _command_rows() -> list[dict[str, str]]:
    """Which plugin adds which command: call each register_commands hook on a scratch group."""
    from doge import pluginmanager

    pm = pluginmanager.get_manager()
    rows = []
    for impl in pm.hook.register_commands.get_hookimpls():
        scratch = click.Group()
        impl.function(cli=scratch)
        rows += [
            {"name": name, "plugin": impl.plugin_name, "origin": pluginmanager.plugin_origin(impl.plugin_name)}
            for name in sorted(scratch.commands)
        ]
    return rows


@click.command()
@json_option()
def plugins(as_json):
    """List every encoder, estimator, control and command with the plugin that gave it."""
    from doge import pluginmanager

    listing = pluginmanager.describe()
    listing["commands"] = _command_rows()
    if as_json:
        echo_json(listing)
        return
    rows = [[kind[:-1], e["name"], e["plugin"], e["origin"]] for kind, entries in listing.items() for e in entries]
    echo_table(rows, ["KIND", "NAME", "PLUGIN", "FROM"])
