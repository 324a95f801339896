"""How stable is a gap, and how many reference images does it need?

Resample the reference sets with replacement, estimate the gap again with the same estimator,
and take the cosine between each resampled gap and the gap itself. At the sets' own sizes
that is the bootstrap: near 1, another draw of images of the same domains would give nearly the
same gap. Drawing fewer images per side gives the curve of cosine against the number of
reference images, which says how many images are enough.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from doge.data.embeddings import Embeddings
from doge.errors import DogeError
from doge.gaps.compare import cosine

DEFAULT_DRAWS = 20
ENOUGH_COSINE = 0.9  # "enough images": the smallest size whose mean cosine reaches this


def accepted_params(estimator, params: dict) -> dict:
    """The recorded params that ``estimator`` takes as arguments (provenance also holds outputs)."""
    names = set(inspect.signature(estimator).parameters) - {"src", "tgt"}
    return {k: v for k, v in (params or {}).items() if k in names}


def vector_estimator(estimator: Callable[..., Any]) -> Callable[..., Any]:
    """The estimator, or its cheaper twin that gives the same vector (``coral`` -> ``mean``)."""
    return getattr(estimator, "vector_estimator", estimator)


def _draw(emb: Embeddings, n: int, rng: np.random.Generator) -> Embeddings:
    rows = rng.integers(0, len(emb), size=n)
    return Embeddings(vectors=emb.vectors[torch.from_numpy(rows)], labels=[emb.labels[i] for i in rows])


def _cosines(estimator, params, src, tgt, gap, n_src, n_tgt, draws, rng) -> list[float]:
    out = []
    for _ in range(draws):
        try:
            vector = estimator(_draw(src, n_src, rng), _draw(tgt, n_tgt, rng), **params)[0]
        except DogeError:  # e.g. class-mean on a draw that missed a class
            continue
        out.append(cosine(vector.cpu(), gap.cpu()))
    return out


def curve_sizes(n_src: int, n_tgt: int) -> list[int]:
    """2, 4, 8, ... below the smaller set's size (the full sizes are the last point)."""
    sizes, n = [], 2
    while n < min(n_src, n_tgt):
        sizes.append(n)
        n *= 2
    return sizes


def stability(
    estimator,
    params: dict,
    src: Embeddings,
    tgt: Embeddings,
    gap: torch.Tensor,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
) -> dict:
    """Bootstrap cosine at the full sizes, and the curve of cosine against images per side."""
    estimator = vector_estimator(estimator)
    params = accepted_params(estimator, params)
    rng = np.random.default_rng(seed)
    gap = torch.as_tensor(gap).float()
    curve = []
    points = [(n, n) for n in curve_sizes(len(src), len(tgt))] + [(len(src), len(tgt))]
    for n_src, n_tgt in points:
        values = _cosines(estimator, params, src, tgt, gap, n_src, n_tgt, draws, rng)
        if values:
            curve.append(
                {
                    "images": min(n_src, n_tgt),
                    "source": n_src,
                    "target": n_tgt,
                    "cosine_mean": round(float(np.mean(values)), 4),
                    "cosine_std": round(float(np.std(values)), 4),
                    "draws": len(values),
                }
            )
    if not curve:
        raise DogeError("the gap's estimator failed on every resampled reference set; cannot measure stability")
    full = curve[-1]
    enough = next((p["images"] for p in curve if p["cosine_mean"] >= ENOUGH_COSINE), None)
    return {
        "draws": draws,
        "cosine_mean": full["cosine_mean"],
        "cosine_std": full["cosine_std"],
        "curve": curve,
        "enough_cosine": ENOUGH_COSINE,
        "images_needed": enough,
        "reference": {"source": len(src), "target": len(tgt)},
    }
