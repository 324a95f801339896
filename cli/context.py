"""What every command shares: the home folder, the registry URL, quietness, and output helpers."""

from __future__ import annotations

import json
from dataclasses import dataclass

import click

from doge.errors import DogeError


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
