"""The built-in commands, added through the same register_commands hook as plugins' commands."""

from doge.hooks import hookimpl


@hookimpl
def register_commands(cli):
    from doge.cli import augment, gap, models, plugins_cmd, registry_cmd, remote, render, serve
    from doge.cli.filter import filter_

    cli.add_command(augment.augment)
    cli.add_command(filter_)
    cli.add_command(gap.gap)
    cli.add_command(models.models)
    cli.add_command(plugins_cmd.plugins)
    cli.add_command(registry_cmd.registry)
    cli.add_command(remote.remote)
    cli.add_command(render.render)
    cli.add_command(serve.serve)
