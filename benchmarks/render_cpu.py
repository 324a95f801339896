"""Render throughput of the tiny model on the CPU, by batch size (and, with --ray, on a local Ray).

Each batch size renders the same images through doge's render path (``doge.rendering.plan.plan`` +
``doge.rendering.run.run_plan``: source decoding, canny maps, CLIP embedding + gap, generation,
PNG writes, manifest) with one pipeline loaded beforehand and one warm-up batch. The tiny
model's images are noise; its figures are doge's per-image overhead around a very cheap
network, not what a real model costs (see render_gpu.py for that).

    .venv/bin/python benchmarks/render_cpu.py
    .venv/bin/python benchmarks/render_cpu.py --ray       # also: doge render vs doge render --ray, end to end
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, print_table, tiny_canny_job


def main() -> None:
    args = _parse()
    logging.getLogger("doge").setLevel(logging.ERROR)  # the tiny model's warning, once per run
    work = Path(args.work or tempfile.mkdtemp(prefix="doge-bench-render-cpu-"))
    job = tiny_canny_job(work, args.sources, args.per_source, args.size, args.steps)
    sources, common, images = job.sources, job.options, job.images
    print(f"machine: {machine()}")
    print(job.describe())

    rows = []
    for batch_size in args.batch_sizes:
        seconds = _timed_local(work, sources, common, batch_size, args.repeats)
        rows.append([batch_size, images, seconds, images / seconds])
    print_table(
        "Render throughput, tiny model, CPU (model loaded once, after a warm-up batch)",
        ["batch size", "images", "seconds (best of repeats)", "img/s"],
        rows,
    )

    if args.ray:
        batch_size = max(args.batch_sizes)
        local = _end_to_end(work / "e2e-local", sources, common, batch_size, None)
        on_ray = _end_to_end(work / "e2e-ray", sources, common, batch_size, "local")
        print_table(
            f"doge render end to end (model load included), batch size {batch_size}",
            ["how", "images", "seconds", "img/s"],
            [
                ["local", images, local, images / local],
                ["--ray (local Ray, one actor per CPU)", images, on_ray, images / on_ray],
            ],
        )
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


def _parse():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--sources", type=int, default=8)
    parser.add_argument("--per-source", type=int, default=2)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2, help="Runs per batch size; the best is kept.")
    parser.add_argument("--ray", action="store_true", help="Also time doge render --ray against a local run.")
    parser.add_argument("--work", help="Folder for the model, sources and outputs (default: a temp folder).")
    return parser.parse_args()


def _timed_local(work: Path, sources: Path, common: dict, batch_size: int, repeats: int) -> float:
    from doge.rendering.plan import plan
    from doge.rendering.run import load_engine, run_plan

    warm = plan(
        ["real->bench"],
        sources,
        work / f"warm-{batch_size}",
        count=batch_size,
        **{**common, "per_source": 1},
        batch_size=batch_size,
    )
    engine = load_engine(warm)
    run_plan(warm, progress=False, engine=engine)
    best = float("inf")
    for repeat in range(repeats):
        out = work / f"bs{batch_size}-{repeat}"
        shutil.rmtree(out, ignore_errors=True)
        p = plan(["real->bench"], sources, out, batch_size=batch_size, **common)
        start = time.perf_counter()
        run_plan(p, progress=False, engine=engine)
        best = min(best, time.perf_counter() - start)
    return best


def _end_to_end(out: Path, sources: Path, common: dict, batch_size: int, ray: str | None) -> float:
    import doge

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    doge.render(["real->bench"], sources, out, batch_size=batch_size, progress=False, ray=ray, **common)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
