"""``doge gap preview``: what a gap does to a few images, as one small grid attached to its version.

The images come from render's own engine and settings (:func:`doge.rendering.plan.plan`, then
:func:`doge.rendering.run.run_plan`), seeded per image as any render is, so the same settings
give the same preview. The grid (one row per source: ``source | shifted``) is a PNG stored in the
blob store beside the gap's vector; its row records the settings that made it.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, cast

from PIL import Image

from doge import storage
from doge.clock import now_iso
from doge.errors import DogeError, whole
from doge.gaps.store import with_registry
from doge.hub import is_tiny_model
from doge.rendering.grid import grid_row, stack_rows
from doge.rendering.plan import plan
from doge.rendering.run import run_plan
from doge.rendering.settings import RenderSettings, settings_from_keywords
from doge.runtime import Runtime

if TYPE_CHECKING:
    from doge.data.images import ImageSet

PREVIEW_CELL = 192  # pixels per image in the grid: a thumbnail, not the render itself


def preview_png(p, cell: int = PREVIEW_CELL) -> bytes:
    """The grid of a finished plan ``p``: one row per source, the source then its outputs."""
    from doge.rendering.batch import png_bytes

    rows = []
    for source in sorted({j.source for j in p.jobs}):
        jobs = [j for j in p.jobs if j.source == source and (p.out / j.image).exists()]
        if not jobs:
            continue
        with storage.open_read(cast("ImageSet", p.sources).files[source]) as f, Image.open(f) as src_image:
            cells = [src_image.convert("RGB")]
        labels = ["source"]
        for job in jobs:
            with Image.open(p.out / job.image) as out_image:
                cells.append(out_image.convert("RGB"))
            labels.append(f"w={job.weight:g}")
        rows.append(grid_row(cells, cell, labels))
    if not rows:
        raise DogeError("the preview rendered no image: check the source images (see the warnings above)")
    return png_bytes(stack_rows(rows))


def make_preview(
    ref: str,
    src,
    settings: RenderSettings | None = None,
    runtime: Runtime | None = None,
    *,
    n: int = 4,
    **options,
) -> dict:
    """Render ``n`` source images of ``src`` shifted by gap ``ref`` and attach the grid to its
    version; returns the stored preview's record (``id``, ``sha256``, ``settings`` ...).

    ``settings`` and ``runtime`` as :func:`doge.render` takes them; any field of either may be a
    keyword instead (``steps=2``, ``device="cpu"``).
    """
    n = whole(n, "-n", 1)  # a preview needs at least 1 source image
    for fixed in ("per_source", "count", "limit", "grid"):
        if fixed in options:
            raise DogeError(f"a preview sets {fixed!r} itself; leave it out")
    settings, runtime = settings_from_keywords(settings, runtime, options, "preview")
    runtime = with_registry(runtime)
    reg = runtime.registry
    gv = reg.resolve(ref)  # the version the preview is attached to, whatever alias moves later
    with tempfile.TemporaryDirectory(prefix="doge-preview-") as tmp:
        p = plan([gv.ref], src, Path(tmp) / "out", settings, runtime, limit=n)
        run_plan(p, progress=runtime.progress, ray=runtime.ray)
        png = preview_png(p, cell=min(PREVIEW_CELL, p.settings.size))
    sources = cast("ImageSet", p.sources)
    record = {
        "gap": gv.ref,
        "src": storage.shown(src) if storage.is_remote(src) else str(Path(src).resolve()),
        "sources": [sources.relative(f) for f in sources.files],
        "n": len(sources),
        **asdict(p.settings),
        "controls": [c.name for c in p.controls],
        "controlnets": list(p.controlnets),
        "fingerprint": p.fingerprint,
        "rendered_at": now_iso(),
        "tiny_model": is_tiny_model(p.settings.model),  # a random test model: its images are noise
    }
    return reg.add_attachment(gv, png, "preview", record)
