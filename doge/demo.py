"""``make demo``: the main job, offline, on real photographs and the random tiny model.

Runs the same ``doge`` commands a user types, printing each one first.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path


def _doge(home: Path, *args: str) -> None:
    command = [str(Path(sys.executable).parent / "doge"), "--home", str(home), *args]
    print("\n$ " + shlex.join(["doge", *args]), flush=True)
    subprocess.run(command, check=True)


def main(out: str = "demo-out") -> None:
    from doge.sample_data import write_domains
    from doge.testing import build_tiny_unclip

    out_dir = Path(out).resolve()
    home = out_dir / "home"
    model = out_dir / "tiny-unclip"
    # Each demo starts from an empty registry and render folder, so that it can run again.
    for previous in (home, out_dir / "render"):
        shutil.rmtree(previous, ignore_errors=True)
    data = write_domains(out_dir / "data", count=24)
    print(f"wrote real photographs to {data['real']} and stylised paintings to {data['painting']}")
    if not (model / "model_index.json").exists():
        build_tiny_unclip(model, seed=0)
    print(
        f"wrote a random tiny unCLIP model to {model}: its embeddings and images are noise; "
        "pass --model stabilityai/stable-diffusion-2-1-unclip for real results"
    )

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _doge(
        home,
        "gap",
        "create",
        "real->painting",
        "--src",
        str(data["real"]),
        "--tgt",
        str(data["painting"]),
        "--model",
        str(model),
        "--description",
        "make demo: skimage photos vs OpenCV stylization",
    )
    _doge(home, "gap", "tag", "real->painting", "demo")
    _doge(home, "gap", "list")
    _doge(home, "gap", "show", "real->painting@demo")
    _render(home, model, data["real"], out_dir / "render")
    print(f"\ndemo outputs are under {out_dir} (registry and blobs in {home})")


def _render(home: Path, model: Path, src: Path, out: Path) -> None:
    """Render a few sources with the tiny model and its ControlNet, with a grid."""
    _doge(
        home,
        "render",
        "--gap",
        "real->painting@demo",
        "--src",
        str(src),
        "--out",
        str(out),
        "--model",
        str(model),
        "--controlnet",
        str(model / "controlnet"),
        "--control",
        "canny",
        "--size",
        "64",
        "--steps",
        "2",
        "--limit",
        "4",
        "--grid",
    )


if __name__ == "__main__":
    main(*sys.argv[1:2])
