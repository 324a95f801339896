"""``doge models``: model helpers (the offline tiny test model)."""

from __future__ import annotations

import click

from doge.cli.options import seed_option


@click.group()
def models():
    """Model helpers."""


@models.command()
@click.argument("directory", type=click.Path(file_okay=False))
@seed_option(0, "Seed of the random weights.")
def tiny(directory, seed):
    """Write a tiny random Stable unCLIP pipeline (+ ControlNet) in diffusers layout.

    Beside it: DIR/clip-text, a CLIP text tower in the image encoder's space (for doge gap
    explain and text gaps), and DIR/hed/ControlNetHED.safetensors (for --control hed).
    For tests and offline demos: it loads with from_pretrained like a real model, but it is
    random, so its embeddings and images are noise.
    """
    from doge.testing import build_tiny_unclip

    path = build_tiny_unclip(directory, seed=seed)
    click.echo(
        f"wrote a random tiny unCLIP model to {path}, with {path / 'clip-text'} (its aligned text tower) and "
        f"{path / 'hed' / 'ControlNetHED.safetensors'} (its images are noise: for tests only)"
    )
