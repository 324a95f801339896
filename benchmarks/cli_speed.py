"""CLI start-up: wall time of `doge --help`, `doge gap list` (200 gaps) and `doge gap show`,
as a ratio to `python -c "import torch"`. These commands never import torch, so they must stay
well under that.

    .venv/bin/python benchmarks/cli_speed.py
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, machine, print_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gaps", type=int, default=200, help="Gap versions in the registry that gap list lists.")
    parser.add_argument("--repeats", type=int, default=7, help="Runs per command; the median is reported.")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="doge-bench-cli-"))
    try:
        _fill(home, args.gaps)
        doge = _doge_command()
        env = {**os.environ, "DOGE_HOME": str(home), "HF_HUB_OFFLINE": "1"}
        commands = [
            ('python -c "import torch"', [PYTHON, "-c", "import torch"]),
            ('python -c "pass"', [PYTHON, "-c", "pass"]),
            ("doge --help", [*doge, "--help"]),
            (f"doge gap list ({args.gaps} gaps)", [*doge, "gap", "list"]),
            (f"doge gap list --json ({args.gaps} gaps)", [*doge, "gap", "list", "--json"]),
            ("doge gap show", [*doge, "gap", "show", "gap-007@v2"]),
        ]
        timings = {label: _median_wall(cmd, env, args.repeats) for label, cmd in commands}
        torch_s = timings['python -c "import torch"']
        rows = [[label, seconds, seconds / torch_s] for label, seconds in timings.items()]
        print(f"machine: {machine()}")
        print_table(f"CLI wall time (median of {args.repeats})", ["command", "seconds", "ratio to import torch"], rows)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _doge_command() -> list[str]:
    script = Path(PYTHON).parent / "doge"  # the console script a user runs
    return [str(script)] if script.exists() else [PYTHON, "-c", "from doge.cli.main import main; main()"]


def _fill(home: Path, count: int) -> None:
    import numpy as np

    from doge.registry import Registry

    registry = Registry(home=home)
    rng = np.random.default_rng(0)
    for i in range(count):
        # 20 names with 10 versions each, like a team's registry
        registry.create(
            f"gap-{i % 20:03d}",
            rng.standard_normal(1024).astype(np.float32),
            {
                "encoder": {"plugin": "clip", "model": "stabilityai/stable-diffusion-2-1-unclip", "dim": 1024},
                "estimator": {"name": "mean", "params": {}},
            },
            description=f"benchmark gap {i}",
        )
    registry.close()


def _median_wall(cmd: list[str], env: dict, repeats: int) -> float:
    subprocess.run(cmd, env=env, capture_output=True, check=True)  # warm the file cache
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    main()
