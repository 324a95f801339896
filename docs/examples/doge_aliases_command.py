"""A command plugin: ``doge aliases`` lists every alias of the registry and where it points.

Commands stay thin: parse, call doge's Python API, print. The settings every command shares
(``--home``, ``--registry``, ``--blobs``) reach it as click's context object, whose
``registry()`` opens the registry they name.
"""

from __future__ import annotations

import json

import click

from doge.plugin import hookimpl


@hookimpl
def register_commands(cli):
    @cli.command()
    @click.option("--json", "as_json", is_flag=True, help="One JSON object: alias ref → version ref.")
    @click.pass_obj
    def aliases(settings, as_json):
        """List every alias (name@alias) with the version it points at."""
        registry = settings.registry()
        try:
            pointers = {f"{v.name}@{alias}": v.ref for v in registry.list() for alias in v.aliases}
        finally:
            registry.close()
        if as_json:
            click.echo(json.dumps(pointers, indent=2, sort_keys=True))
            return
        for alias, ref in sorted(pointers.items()):
            click.echo(f"{alias} -> {ref}")
