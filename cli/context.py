"""What every command shares: the home folder, the registry URL, quietness, and output helpers."""

from __future__ import annotations

import json
from dataclasses import dataclass

import click


@dataclass
class Settings:
    home: str | None
    registry_url: str | None
    quiet: bool
    blob_store: str | None = None

    def registry(self):
        from doge.registry import Registry

        return Registry(home=self.home, url=self.registry_url, blob_store=self.blob_store)


pass_settings = click.make_pass_decorator(Settings)


def echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def echo_table(rows: list[list[str]], headers: list[str]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    for row in [headers, *rows]:
        click.echo("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())
