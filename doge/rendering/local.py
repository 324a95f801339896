"""A render on this machine: load the engine once, then work through the pending images in batches."""

from __future__ import annotations

from doge.rendering.batch import Engine, OutputWriter, Source, control_outputs, load_source, render_batch
from doge.rendering.plan import Job, Plan


def run_local(p: Plan, progress: bool, engine: Engine) -> list[str]:
    writer = OutputWriter(p.out, len(p.pending), progress)
    cache: dict[int, Source | None] = {}
    try:
        for batch in _batches(p.pending, p.batch_size):
            # Only this batch's sources stay decoded: memory stays flat however many sources there are.
            wanted = sorted({job.source for job in batch})
            cache = {i: cache[i] if i in cache else _load_with_controls(p, i, writer) for i in wanted}
            writer.write(render_batch(p, engine, batch, cache, on_step=writer.advance))
    finally:
        written = writer.close()
    return written


def _load_with_controls(p: Plan, index: int, writer: OutputWriter) -> Source | None:
    source = load_source(p, index)
    if source is not None:
        writer.write(control_outputs(p, source))
    return source


def _batches(jobs: list[Job], size: int):
    for start in range(0, len(jobs), size):
        yield jobs[start : start + size]
