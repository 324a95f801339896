"""Carrying out a render plan: here (:mod:`doge.rendering.local`) or on Ray (:mod:`doge.rendering.ray_runner`),
then the grid sheets."""

from __future__ import annotations

from doge.locks import output_lock
from doge.rendering.batch import Engine, load_engine
from doge.rendering.grid import write_grids
from doge.rendering.local import run_local
from doge.rendering.plan import Plan, RenderResult, pending_jobs


def run_plan(p: Plan, progress: bool = True, ray: str | None = None, engine: Engine | None = None) -> RenderResult:
    """Render the plan's images that ``p.out`` lacks, here or on Ray when ``ray`` is "local",
    "auto" or a cluster address.

    The output folder is locked for the whole run (a second writer gets
    :class:`doge.locks.FolderLocked`), and what is pending is read again under the lock.
    ``engine``, from :func:`load_engine`, reuses a loaded pipeline across plans (a local run only).
    """
    with output_lock(p.out, "render"):
        p.pending = pending_jobs(p)
        return _run(p, progress, ray, engine)


def _run(p: Plan, progress: bool, ray: str | None, engine: Engine | None) -> RenderResult:
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
