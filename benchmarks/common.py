"""What the benchmarks share: the machine's description, tables, measuring a child process, and the
tiny model's render job (its model, sources and registry) that the CPU render benchmarks time.

Each measured run is a fresh subprocess, so one run's imports, caches and freed-but-kept memory
never colour the next. Peak memory comes two ways: the kernel's peak RSS of the child (and,
separately, of the processes it started), and the process tree's PSS sampled by this process
(shared pages split between the processes that share them, so workers are not counted twice).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def machine() -> str:
    """One line: CPU, cores, memory, OS, Python, torch, date."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        import psutil

        memory = f", {psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
    except ImportError:
        pass
    torch_version = subprocess.run(
        [PYTHON, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True
    ).stdout.strip()
    return (
        f"{cpu}, {os.cpu_count()} cores{memory}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, torch {torch_version}; {datetime.date.today().isoformat()}"
    )


def print_table(title: str, headers: list[str], rows: list[list]) -> None:
    """A Markdown table, ready to paste into BENCHMARKS.md."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join(" --- " for _ in headers) + "|")
    for row in rows:
        print("| " + " | ".join(_cell(v) for v in row) + " |")
    sys.stdout.flush()


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


@dataclass
class Measured:
    wall_s: float
    peak_rss_mb: float  # the child process itself (kernel's ru_maxrss)
    peak_children_rss_mb: float  # the largest process the child started and waited for
    peak_tree_pss_mb: float | None  # sampled; None without psutil
    stdout: str
    report: dict  # the child's last stdout line, if it was JSON


def run_measured(cmd: list[str], env: dict | None = None, sample_s: float = 0.05) -> Measured:
    """Run ``cmd`` to completion; fail loudly if it fails."""
    start = time.perf_counter()
    child = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )
    peak = _PssSampler(child.pid, sample_s)
    peak.start()
    out, err = child.communicate()
    wall = time.perf_counter() - start
    peak.stop()
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({child.returncode}):\n{err[-3000:]}")
    report = {}
    lines = out.strip().splitlines()
    if lines:
        with contextlib.suppress(json.JSONDecodeError):
            report = json.loads(lines[-1])
    return Measured(
        wall,
        report.get("maxrss_mb", float("nan")),
        report.get("children_maxrss_mb", float("nan")),
        peak.peak_mb,
        out,
        report,
    )


def self_report(**figures) -> None:
    """Printed by a child as its last line: its figures plus its own and its children's peak RSS."""
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is in bytes on macOS, KiB on Linux
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale / 2**20
    print(json.dumps({**figures, "maxrss_mb": me, "children_maxrss_mb": kids}))


class _PssSampler:
    """The largest total PSS of a process and its descendants, sampled in a thread."""

    def __init__(self, pid: int, every_s: float):
        self.pid, self.every_s = pid, every_s
        self.peak_mb: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        try:
            import psutil  # noqa: F401
        except ImportError:
            return
        self.peak_mb = 0.0
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            total = 0
            try:
                for proc in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, AttributeError):
                        total += proc.memory_full_info().pss
            except psutil.NoSuchProcess:
                return
            self.peak_mb = max(self.peak_mb or 0.0, total / 2**20)
            time.sleep(self.every_s)


def tiny_model(work: Path) -> Path:
    """The random tiny unCLIP model, built once into ``work``."""
    path = work / "tiny-unclip"
    if not (path / "model_index.json").exists():
        subprocess.run(
            [PYTHON, "-c", f"from doge.testing import build_tiny_unclip; build_tiny_unclip({str(path)!r})"],
            check=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    return path


def render_sources(folder: Path, count: int, size: int) -> Path:
    """``count`` real photo crops (skimage) of ``size`` pixels as PNG sources for a render."""
    from PIL import Image

    from doge.sample_data import crops

    folder.mkdir(parents=True, exist_ok=True)
    for stem, crop in crops(count, size=size):
        Image.fromarray(crop).save(folder / f"{stem}.png")
    return folder


def registry_with_gap(home: Path, model: Path) -> Path:
    """A registry holding ``real->bench``: a random gap as wide as ``model``'s image encoder."""
    import numpy as np

    from doge.registry import Registry
    from doge.rendering.loading import image_encoder_width

    width = image_encoder_width(str(model))
    vector = np.random.default_rng(0).standard_normal(width).astype(np.float32) * 0.1
    registry = Registry(home=home)
    registry.create("real->bench", vector, {"encoder": {"plugin": "clip", "model": str(model), "dim": width}})
    registry.close()
    return home


@dataclass
class TinyCannyJob:
    """A render job for the tiny model with its canny ControlNet on the CPU, from real photo crops."""

    sources: Path  # the folder of source images
    count: int  # how many sources it holds
    options: dict  # doge.render's (and plan's) keywords: model, controls, size, steps, per_source, home, device

    @property
    def images(self) -> int:
        return self.count * self.options["per_source"]

    def describe(self, *details: str) -> str:
        """One line for the report: the model, size, steps, ``details`` and the images per run."""
        size, steps, per_source = self.options["size"], self.options["steps"], self.options["per_source"]
        images = f"{self.count} sources x {per_source} = {self.images} images per run"
        return ", ".join(["tiny model, canny ControlNet", f"{size}x{size}", f"{steps} steps", *details, images])


def tiny_canny_job(work: Path, sources: int, per_source: int, size: int, steps: int) -> TinyCannyJob:
    """The tiny model, ``sources`` photo crops and a registry holding ``real->bench``, built in ``work``."""
    model = tiny_model(work)
    folder = render_sources(work / "sources", sources, size)
    home = registry_with_gap(work / "home", model)
    options = dict(
        model=str(model),
        controls=["canny"],
        controlnets=[str(model / "controlnet")],
        size=size,
        steps=steps,
        per_source=per_source,
        home=home,
        device="cpu",
    )
    return TinyCannyJob(folder, sources, options)
