"""The ``doge`` command line: parse, call ``doge`` / ``doge.registry``, print."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

import doge
from doge.cli.context import GlobalOptions, accept_global_options
from doge.errors import DogeError, first_line


class DogeGroup(click.Group):
    """A click group that turns a DogeError into one line naming the fix, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DogeError as exc:
            raise click.ClickException(str(exc)) from None
        except BrokenPipeError:  # `doge gap list | head`: click ends quietly
            raise
        except OSError as exc:  # a fault no command foresaw still gets one line, not a traceback
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(
                f"{where}{exc.strerror or first_line(exc)}; check the path and the disk"
            ) from None


@click.group(cls=DogeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(doge.__version__, prog_name="doge")
@click.option(
    "--home",
    envvar="DOGE_HOME",
    type=click.Path(file_okay=False),
    help="State folder (registry, blobs). Default: $DOGE_HOME or the user data folder.",
)
@click.option(
    "--registry",
    "registry_url",
    envvar="DOGE_REGISTRY_URL",
    help="SQLAlchemy URL of the gap registry (default: SQLite under --home).",
)
@click.option(
    "--blobs",
    "blob_store",
    envvar="DOGE_BLOB_STORE",
    help="Where gap vectors are stored: a folder or an fsspec URL such as s3://bucket/gaps "
    "(default: blobs/ under --home).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def cli(ctx: click.Context, home, registry_url, blob_store, quiet):
    """Domain Gap Embeddings: extract, version, share and render domain gaps.

    Quote names with '->' in a shell: doge gap create 'real->painting' ...
    """
    logging.addLevelName(logging.WARNING, "warning")
    logging.basicConfig(format="%(levelname)s: %(message)s", level=logging.WARNING)
    ctx.obj = GlobalOptions(home=home, registry_url=registry_url, quiet=quiet, blob_store=blob_store)


BUILTIN_COMMANDS = "doge.cli.commands"


def get_cli() -> click.Group:
    """The ``doge`` group with every command added through the register_commands hook.

    The built-in commands are a plugin too; registering it here, not in the core's plugin
    manager, keeps click out of ``doge`` core.
    """
    from doge import pluginmanager
    from doge.cli import commands

    pm = pluginmanager.get_manager()
    if pm.get_plugin(BUILTIN_COMMANDS) is None:
        pm.register(commands, name=BUILTIN_COMMANDS)
        pluginmanager.register_commands(cli)
        accept_global_options(cli)  # `doge gap list --home X`, plugin commands included
    return cli


def main(argv=None) -> int:
    try:
        app = get_cli()
    except DogeError as exc:
        click.echo(f"Error: {exc}", err=True)
        return 1
    return app.main(args=argv, prog_name="doge")


if __name__ == "__main__":
    sys.exit(main())
