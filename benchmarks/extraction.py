"""Gap extraction: images/s and peak memory of `doge gap create` against the paper's loader.

For each count N, N/2 source and N/2 target images (real photo crops from scikit-image and a
night-shifted copy of other crops, 224 px) are turned into a mean gap twice, each in a fresh
process: by `doge gap create` (streamed batches, decoding in worker processes) and by a straight
reimplementation of the paper's loader (every image decoded and held in memory, all of them
preprocessed and encoded in one forward pass), with the same model and preprocessing. Both gaps
are compared, so the two paths are known to compute the same thing.

    .venv/bin/python benchmarks/extraction.py                      # tiny random model
    .venv/bin/python benchmarks/extraction.py --model stabilityai/stable-diffusion-2-1-unclip

With the tiny model (a 32-pixel, 2-layer CLIP) the figures measure doge's own pipeline:
discovery, decoding, hashing, batching and storing; a real ViT-H/14 makes encoding dominate
and the paper's single forward pass grow by gigabytes of activations.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, machine, print_table, run_measured, self_report, tiny_model

SIZE = 224
SHIFT = "night"  # a cheap OpenCV shift: writing 1600 stylised paintings would take minutes


def main() -> None:
    args = _parse()
    if args.child:
        return _child(args)
    work = Path(args.work or tempfile.mkdtemp(prefix="doge-bench-extraction-"))
    model = args.model or str(tiny_model(work))
    data = _images(work / "data", max(args.counts) // 2)
    print(f"machine: {machine()}")
    print(f"model: {model}; images: {SIZE} px PNG; batch size {args.batch_size}; work folder {work}")
    rows = []
    for count in args.counts:
        common = [
            PYTHON,
            __file__,
            "--model",
            model,
            "--batch-size",
            str(args.batch_size),
            "--counts",
            str(count),
            "--data",
            str(data),
            "--out",
            str(work / f"gap-{count}"),
        ]
        doge = run_measured(
            [*common, "--child", "doge", *(["--workers", str(args.workers)] if args.workers is not None else [])],
            env={"HF_HUB_OFFLINE": "1"},
        )
        paper = run_measured([*common, "--child", "paper"], env={"HF_HUB_OFFLINE": "1"})
        diff = _max_difference(work / f"gap-{count}")
        rows.append(
            [
                count,
                count / doge.report["seconds"],
                doge.peak_rss_mb,
                doge.peak_tree_pss_mb,
                count / paper.report["seconds"],
                paper.peak_rss_mb,
                paper.peak_tree_pss_mb,
                f"{diff:.1e}",
            ]
        )
    print_table(
        "Gap extraction (mean gap of N/2 source and N/2 target images)",
        [
            "images",
            "doge img/s",
            "doge peak RSS MB",
            "doge peak PSS MB (tree)",
            "paper img/s",
            "paper peak RSS MB",
            "paper peak PSS MB",
            "max abs gap difference",
        ],
        rows,
    )
    print(
        "\nimg/s counts the whole command after Python's imports: model load, decoding, encoding, storing."
        "\npeak RSS: the main process (kernel). PSS (tree): main process plus decoding workers, sampled."
    )


def _parse():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--counts", type=int, nargs="+", default=[100, 400, 1600], help="Images in all (half each side)."
    )
    parser.add_argument("--model", help="unCLIP or CLIP model (default: the tiny random model).")
    parser.add_argument("--batch-size", type=int, default=32, help="doge's --batch-size.")
    parser.add_argument("--workers", type=int, help="doge's --workers (default: doge's automatic choice).")
    parser.add_argument("--work", help="Folder for images, models and registries (default: a temp folder).")
    parser.add_argument("--child", choices=["doge", "paper"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    return parser.parse_args()


def _images(folder: Path, per_side: int) -> Path:
    from doge.sample_data import write_domains

    if not (folder / "real").is_dir() or len(list((folder / "real").iterdir())) < per_side:
        write_domains(folder, count=per_side, size=SIZE, shifts=(SHIFT,))
    return folder


def _child(args) -> None:
    import numpy as np

    count = args.counts[0]
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _import_everything()  # the clock measures the work, not Python's imports
    start = time.perf_counter()
    if args.child == "doge":
        gap = _doge(args, data, count // 2, out)
    else:
        gap = _paper(args.model, data, count // 2)
    seconds = time.perf_counter() - start
    np.save(out / f"{args.child}.npy", gap)
    self_report(seconds=seconds)


def _import_everything() -> None:
    import torch  # noqa: F401
    import transformers  # noqa: F401
    from transformers import CLIPVisionModelWithProjection  # noqa: F401

    import doge.api
    import doge.cli.main
    import doge.data.encoding
    import doge.plugins.clip_encoder
    import doge.registry  # noqa: F401


def _doge(args, data: Path, per_side: int, out: Path):
    """`doge gap create`, exactly as a user runs it, in this process."""
    from doge.cli.main import get_cli
    from doge.registry import Registry

    home = out / "home"
    argv = [
        "--home",
        str(home),
        "--quiet",
        "gap",
        "create",
        "bench",
        "--src",
        str(data / "real"),
        "--tgt",
        str(data / SHIFT),
        "--src-limit",
        str(per_side),
        "--tgt-limit",
        str(per_side),
        "--model",
        args.model,
        "--batch-size",
        str(args.batch_size),
    ]
    if args.workers is not None:
        argv += ["--workers", str(args.workers)]
    get_cli().main(argv, standalone_mode=False)
    registry = Registry(home=home)
    return registry.load_vector(registry.resolve("bench"))


def _paper(model: str, data: Path, per_side: int):
    """The paper's loader: hold every decoded image, preprocess them all, encode in one forward pass."""
    import torch
    from PIL import Image

    from doge.api import build_encoder
    from doge.data.images import discover

    encoder = build_encoder("clip", model=model)

    def embed(folder: Path):
        files = discover(folder, limit=per_side, seed=0).files  # the very files doge draws
        images = [Image.open(f).convert("RGB") for f in files]
        pixels = torch.stack([encoder.preprocessor(image) for image in images])
        return encoder.encode(pixels)

    source, target = embed(data / "real"), embed(data / SHIFT)
    return (target.mean(0) - source.mean(0)).numpy()


def _max_difference(folder: Path) -> float:
    import numpy as np

    return float(np.abs(np.load(folder / "doge.npy") - np.load(folder / "paper.npy")).max())


if __name__ == "__main__":
    main()
