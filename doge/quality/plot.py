"""The picture of an evaluation: where the gap moves the sources, how far, and how stable it is.

Left: source, target and shifted-source embeddings in 2-D, the x-axis along the gap (so the gap
is a horizontal arrow) and the y-axis the main direction of the remaining spread. Middle:
transfer accuracy and centroid ratio against the edit weight. Right: stability cosine against
the number of reference images per side.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from doge.errors import DogeError
from doge.gaps.shifting import shift

_INSTALL = "pip install 'doge[plot]'"


def check_plot_path(path) -> None:
    """Refuse a bad --plot before any work: matplotlib missing, or not a .png file."""
    if Path(path).suffix.lower() != ".png":
        raise DogeError(f"--plot {path}: name a .png file, e.g. eval.png")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise DogeError(f"--plot needs matplotlib: {_INSTALL}") from None


def projection_axes(src: np.ndarray, tgt: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """``[2, D]``: the unit gap direction, and the first principal axis orthogonal to it."""
    u = direction / max(np.linalg.norm(direction), 1e-12)
    both = np.concatenate([src, tgt])
    rest = both - both.mean(0)
    rest = rest - np.outer(rest @ u, u)
    _, _, vh = np.linalg.svd(rest, full_matrices=False)
    return np.stack([u, vh[0]])


def plot_evaluation(path, record: dict, src: np.ndarray, tgt: np.ndarray, vector: np.ndarray, extras=None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from doge.atomic import write_atomic

    transfer, stab = record["transfer"], record.get("stability", {})
    w = transfer["best_weight"]
    moved = shift(src, vector, w, extras)
    direction = moved.mean(0) - src.mean(0)
    if not np.linalg.norm(direction) > 0:
        direction = vector
    axes = projection_axes(src, tgt, direction)
    origin = np.concatenate([src, tgt]).mean(0)
    p_src, p_tgt, p_moved = ((x - origin) @ axes.T for x in (src, tgt, moved))

    fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(15, 4.6))
    ax0.scatter(*p_src.T, s=18, c="tab:blue", label="source (held-out)")
    ax0.scatter(*p_tgt.T, s=18, c="tab:orange", label="target (held-out)")
    ax0.scatter(*p_moved.T, s=22, facecolors="none", edgecolors="tab:green", label=f"source + gap, w={w:g}")
    start, end = p_src.mean(0), p_moved.mean(0)
    ax0.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "-|>", "lw": 2, "color": "black"})
    ax0.set_xlabel("along the gap")
    ax0.set_ylabel("main other direction")
    ax0.set_title("embeddings")
    ax0.legend(fontsize=8, loc="best")

    ax1.plot(transfer["weights"], transfer["accuracy"], "o-", c="tab:green", label="classified as target")
    ax1.plot(transfer["weights"], transfer["centroid_ratio"], "s--", c="tab:gray", label="centroid distance ratio")
    ax1.axvline(w, c="black", lw=0.8, ls=":")
    ax1.set_xlabel("edit weight w")
    ax1.set_ylim(bottom=0)
    ax1.set_title(f"transfer: {transfer['accuracy_at_best']:.0%} at w={w:g}")
    ax1.legend(fontsize=8, loc="best")

    if stab.get("curve"):
        sizes = [p["images"] for p in stab["curve"]]
        means = np.array([p["cosine_mean"] for p in stab["curve"]])
        stds = np.array([p["cosine_std"] for p in stab["curve"]])
        ax2.plot(sizes, means, "o-", c="tab:purple")
        ax2.fill_between(sizes, means - stds, means + stds, color="tab:purple", alpha=0.2)
        ax2.axhline(stab["enough_cosine"], c="gray", lw=0.8, ls=":")
        ax2.set_xscale("log", base=2)
        ax2.set_ylim(min(0.0, float((means - stds).min())), 1.02)
        ax2.set_title(f"stability ({stab.get('pool', '')} images): cosine {stab['cosine_mean']:.2f}")
    else:
        ax2.set_title(f"stability: {stab.get('skipped', 'not measured')}", fontsize=8)
    ax2.set_xlabel("reference images per side")
    ax2.set_ylabel("cosine to the gap")

    fig.suptitle(f"{record['gap']} ({record.get('estimator')}, {record['encoder'].get('plugin')})")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
    return Path(path)
