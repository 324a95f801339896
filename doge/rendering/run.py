"""Carrying out a render plan: here (:mod:`doge.rendering.local`) or on Ray (:mod:`doge.rendering.ray_runner`),
then the grid sheets."""

from __future__ import annotations

from doge.rendering.batch import Engine, load_engine
from doge.rendering.grid import write_grids
from doge.rendering.local import run_local
from doge.rendering.plan import Plan, RenderResult


def run_plan(p: Plan, progress: bool = True, ray: str | None = None, engine: Engine | None = None) -> RenderResult:
    """Render ``p.pending`` here, or on Ray when ``ray`` is "local", "auto" or a cluster address.

    ``engine``, from :func:`load_engine`, reuses a loaded pipeline across plans (a local run only).
    """
    skipped = len(p.jobs) - len(p.pending)
    written: list[str] = []
    if p.pending and ray:
        # Ray is an optional extra and slow to import: only a --ray run pays for it.
        from doge.rendering.ray_runner import run_on_ray

        written = run_on_ray(p, ray, progress)
    elif p.pending:
        written = run_local(p, progress, engine or load_engine(p))
    grids = write_grids(p) if p.grid else []
    return RenderResult(out=p.out, written=written, skipped=skipped, manifest=p.out / "manifest.jsonl", grids=grids)
