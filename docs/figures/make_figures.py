"""Remake the figures of the documentation site from real runs: ``make figures``.

- ``geometry-fits.png`` (concepts/geometry.md): one wide photograph rendered with ``--fit keep``,
  ``crop`` and ``pad``, each row the grid doge itself writes (``--grid``: the source laid out like
  its outputs | the canny control map | the output). The maps and shapes are real; the model is
  the random tiny one, so the outputs are noise, as the page says.

The serve screenshots (``docs/serve-*.png``) come from the browser test:
``DOGE_UPDATE_SCREENSHOT=1 pytest tests/serve/test_serve_browser.py`` (``make figures`` runs both).

Usage: python docs/figures/make_figures.py [WORK_DIR]
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def wide_photo(folder: Path) -> Path:
    """A 2:1 crop of scikit-image's astronaut photograph (real edges for canny to find)."""
    from PIL import Image

    from doge.sample_data import _photo

    image = _photo("astronaut")  # 512 x 512
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "astronaut-wide.png"
    Image.fromarray(image[96:352, :]).save(path)  # 512 x 256
    return path


def geometry_figure(work: Path) -> Path:
    from PIL import Image, ImageDraw

    import doge
    from doge.api import create_gap
    from doge.registry import Registry
    from doge.sample_data import write_domains
    from doge.testing import build_tiny_unclip

    model = build_tiny_unclip(work / "tiny-model", seed=0)
    data = write_domains(work / "data", count=8, size=64)
    source = wide_photo(work / "wide")
    registry = Registry(home=work / "home")
    create_gap("real->painting", data["real"], data["painting"], model=str(model), registry=registry,
               progress=False, workers=0)  # fmt: skip
    rows = []
    for fit in ("keep", "crop", "pad"):
        out = work / f"render-{fit}"
        doge.render(
            ["real->painting"], source.parent, out, model=str(model), controlnets=[str(model / "controlnet")],
            controls=["canny"], fit=fit, size=256, steps=2, grid=True, registry=registry, progress=False,
        )  # fmt: skip
        grid = Image.open(out / "grid" / "grid_000.png").convert("RGB")
        label = Image.new("RGB", (90, grid.height), "white")
        ImageDraw.Draw(label).text((8, grid.height // 2 - 6), f"--fit {fit}", fill="black")
        row = Image.new("RGB", (label.width + grid.width, grid.height), "white")
        row.paste(label, (0, 0))
        row.paste(grid, (label.width, 0))
        rows.append(row)
    registry.close()
    figure = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows) + 8 * (len(rows) - 1)), "white")
    y = 0
    for row in rows:
        figure.paste(row, (0, y))
        y += row.height + 8
    target = HERE / "geometry-fits.png"
    # a 128-colour palette: a third of the bytes, and the maps and photo still read clearly
    figure.quantize(128, dither=Image.Dither.NONE).save(target, optimize=True)
    return target


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if len(sys.argv) > 1:
        work = Path(sys.argv[1])
        print(geometry_figure(work))
        return
    with tempfile.TemporaryDirectory() as tmp:
        print(geometry_figure(Path(tmp)))


if __name__ == "__main__":
    main()
