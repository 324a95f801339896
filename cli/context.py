"""What every command shares: the home folder, the registry URL, quietness, and output helpers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from doge.errors import DogeError

if TYPE_CHECKING:  # the registry (SQLAlchemy) is imported when a command opens it
    from doge.registry import Registry


@dataclass
class GlobalOptions:
    """The options of ``doge`` itself (``--home``, ``--registry``, ``--blobs``, ``--quiet``), which every
    command reads; a command takes them as ``doge_options`` (``@pass_doge_options``)."""

    home: str | None
    registry_url: str | None
    quiet: bool
    blob_store: str | None = None

    def registry(self, **options: Any) -> Registry:
        """The registry these options name, connected to the plugins' ``gap_event`` hook; ``options``
        go to :class:`doge.registry.Registry`."""
        from doge.pluginmanager import forward_gap_events
        from doge.registry import Registry

        return forward_gap_events(
            Registry(home=self.home, url=self.registry_url, blob_store=self.blob_store, **options)
        )


pass_doge_options = click.make_pass_decorator(GlobalOptions)


def echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def key_values(texts, flag: str, example: str) -> list[tuple[str, str]]:
    """``KEY=VALUE`` texts of a repeatable ``flag`` as (key, value) pairs; one line for a malformed one."""
    pairs = []
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise DogeError(f"{flag} {text!r}: write KEY=VALUE, e.g. {flag} {example}")
        pairs.append((key.strip(), value))
    return pairs


def table_lines(rows: list[list[str]], headers: list[str]) -> list[str]:
    """``rows`` under ``headers``, each column as wide as its widest cell, two spaces apart."""
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    return ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [headers, *rows]]


def echo_table(rows: list[list[str]], headers: list[str]) -> None:
    for line in table_lines(rows, headers):
        click.echo(line)


# The options `doge` itself takes (cli/main.py), which every command also accepts after its own
# name: `doge gap list --home X` is `doge --home X gap list`.
GLOBAL_OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "home": (("--home",), {"type": click.Path(file_okay=False), "help": "Same as 'doge --home'."}),
    "registry_url": (("--registry",), {"help": "Same as 'doge --registry'."}),
    "blob_store": (("--blobs",), {"help": "Same as 'doge --blobs'."}),
    "quiet": (("-q", "--quiet"), {"is_flag": True, "help": "Same as 'doge --quiet'."}),
}


def accept_global_options(command: click.Command) -> None:
    """Let ``command`` and every command under it take the global options after their names
    too; a command that has an option of the same spelling (``remote add --blobs``) keeps its own."""
    taken = {opt for param in command.params for opt in getattr(param, "opts", ())}
    for attr, (decls, extra) in GLOBAL_OPTIONS.items():
        if taken.isdisjoint(decls) and not any(p.name == f"global_{attr}" for p in command.params):
            command.params.append(
                click.Option(
                    [f"global_{attr}", *decls],
                    expose_value=False,
                    is_eager=True,  # set before the command's own callbacks read the options
                    callback=_set_global(attr),
                    **extra,
                )
            )
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            accept_global_options(sub)


def _set_global(attr: str):
    def callback(ctx: click.Context, _param, value):
        doge_options = ctx.find_object(GlobalOptions)
        if doge_options is not None and value not in (None, False):
            setattr(doge_options, attr, value)

    return callback


def control_options(texts, aliases: dict[str, dict]) -> dict[str, dict]:
    """``--control-option NAME.KEY=VALUE`` values, parsed against each control's own options, merged
    with the alias flags (``--canny-low`` is ``canny.low``); a flag left out is not passed."""
    from doge import pluginmanager

    merged = {name: {k: v for k, v in given.items() if v is not None} for name, given in aliases.items()}
    for key, value in key_values(texts, "--control-option", "canny.low=50"):
        name, dot, option = key.partition(".")
        if not dot or not name or not option:
            raise DogeError(f"--control-option {key}={value}: name the control too, as NAME.KEY=VALUE (canny.low=50)")
        parsed = pluginmanager.parse_options("controls", name, [(option, value)])
        if option in merged.get(name, {}) and merged[name][option] != parsed[option]:
            raise DogeError(
                f"{name}.{option} is given twice with different values (an alias flag and --control-option)"
            )
        merged.setdefault(name, {}).update(parsed)
    return {name: given for name, given in merged.items() if given}
