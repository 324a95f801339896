"""Contact sheets: one row per source, ``source | controls | outputs``."""

from __future__ import annotations

from PIL import Image, ImageDraw

_PAD = 4


def grid_row(images: list[Image.Image], cell: int, labels: list[str] | None = None) -> Image.Image:
    """Lay ``images`` side by side, each fitted into a ``cell``×``cell`` square, with a caption."""
    caption = 12 if labels else 0
    row = Image.new("RGB", (len(images) * (cell + _PAD) + _PAD, cell + 2 * _PAD + caption), "white")
    draw = ImageDraw.Draw(row)
    for i, image in enumerate(images):
        fitted = image.convert("RGB").copy()
        fitted.thumbnail((cell, cell))
        x = _PAD + i * (cell + _PAD)
        row.paste(fitted, (x + (cell - fitted.width) // 2, _PAD + (cell - fitted.height) // 2))
        if labels:
            draw.text((x, cell + _PAD + 1), labels[i][: max(4, cell // 6)], fill="black")
    return row


def stack_rows(rows: list[Image.Image]) -> Image.Image:
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    return sheet
