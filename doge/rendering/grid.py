"""Contact sheets: one row per source, ``source | controls | outputs``.

The source is shown laid out as its outputs are (``--fit``), and every cell is scaled to the
cell size, so that a source, its maps and its images line up.
"""

from __future__ import annotations

import io
from itertools import groupby
from pathlib import Path

from PIL import Image, ImageDraw

from doge.atomic import save_image_atomic
from doge.rendering import manifest
from doge.rendering.geometry import Geometry
from doge.rendering.plan import Plan, output_stem

GRID_ROWS = 8  # sources per grid sheet

_PAD = 4


def grid_row(images: list[Image.Image], cell: int, labels: list[str] | None = None) -> Image.Image:
    """Lay ``images`` side by side, each fitted into a ``cell``×``cell`` square, with a caption."""
    caption = 12 if labels else 0
    row = Image.new("RGB", (len(images) * (cell + _PAD) + _PAD, cell + 2 * _PAD + caption), "white")
    draw = ImageDraw.Draw(row)
    for i, image in enumerate(images):
        fitted = fit_to_cell(image.convert("RGB"), cell)
        x = _PAD + i * (cell + _PAD)
        row.paste(fitted, (x + (cell - fitted.width) // 2, _PAD + (cell - fitted.height) // 2))
        if labels:
            draw.text((x, cell + _PAD + 1), labels[i][: max(4, cell // 6)], fill="black")
    return row


def fit_to_cell(image: Image.Image, cell: int) -> Image.Image:
    """``image`` scaled, up or down, so that its longer side is ``cell``."""
    factor = cell / max(image.size)
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, Image.Resampling.LANCZOS)


def source_cell(path: Path, entry: dict) -> Image.Image:
    """The source laid out as its outputs are (cropped, scaled or letterboxed: ``entry["geometry"]``)."""
    from doge.data.images import decode_image

    image, _ = decode_image(path)
    if image is None:  # gone or damaged since the render: an empty cell
        return Image.new("RGB", (64, 64), "white")
    if "geometry" not in entry:  # a manifest line from before --fit
        return image
    return Geometry.from_json(entry["geometry"]).apply(image)


def stack_rows(rows: list[Image.Image]) -> Image.Image:
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    return sheet


def _open(path) -> Image.Image:
    """A finished image, read whole (from a folder or an object store)."""
    from doge import storage

    with Image.open(io.BytesIO(storage.read_bytes(path))) as image:
        image.load()
        return image.copy()


def write_grids(p: Plan) -> list[Path]:
    """Sheets of ``source | controls | outputs``, one row per source, from every finished image."""
    done = manifest.read(p.out / "manifest.jsonl")
    cell = min(256, p.settings.size)
    rows = []
    finished = [j for j in p.jobs if j.image in done and (p.out / j.image).exists()]  # not those filtered away
    for source, group in groupby(finished, key=lambda j: j.source):
        path = p.sources.files[source]
        stem = output_stem(p.sources.relative(path))
        jobs = list(group)
        cells, labels = [source_cell(path, done[jobs[0].image])], ["source"]
        for control in p.controls:
            control_path = p.out / "controls" / f"{stem}_{control.name}.png"
            if control_path.exists():
                cells.append(_open(control_path))
                labels.append(control.name)
        for job in jobs:
            cells.append(_open(p.out / job.image))
            labels.append(f"w={job.weight:g}" if p.settings.sweep else f"k={job.k}")
        rows.append(grid_row(cells, cell, labels))
    sheets = []
    for i in range(0, len(rows), GRID_ROWS):
        target = p.out / "grid" / f"grid_{i // GRID_ROWS:03d}.png"
        save_image_atomic(target, stack_rows(rows[i : i + GRID_ROWS]))
        sheets.append(target)
    return sheets
