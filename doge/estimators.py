"""The maths of gap estimators: each maps two sets of embeddings to one gap vector.

An estimator is ``fn(src: Embeddings, tgt: Embeddings, **params) -> (vector, params)``; the
returned params (defaults filled in) go into the gap's provenance.
"""

from __future__ import annotations

import torch

from doge.embeddings import Embeddings
from doge.errors import DogeError


def mean_gap(src: Embeddings, tgt: Embeddings) -> tuple[torch.Tensor, dict]:
    """The paper's gap: mean(target) - mean(source)."""
    return tgt.vectors.mean(0) - src.vectors.mean(0), {}


def median_gap(src: Embeddings, tgt: Embeddings) -> tuple[torch.Tensor, dict]:
    """Coordinate-wise median(target) - median(source): a few outlier images barely move it.

    ``torch.median`` returns the lower of the two middle values for even counts; the midpoint is
    taken instead so that the result does not depend on the order of images.
    """
    return _midpoint_median(tgt.vectors) - _midpoint_median(src.vectors), {}


def _midpoint_median(x: torch.Tensor) -> torch.Tensor:
    return torch.quantile(x.double(), 0.5, dim=0).to(x.dtype)


def pca_gap(src: Embeddings, tgt: Embeddings) -> tuple[torch.Tensor, dict]:
    """First principal component of both sets together, as the paper's code computes it.

    A principal axis has no sign and unit length, so it is oriented from source to target (its
    dot product with the mean gap is positive) and scaled to the mean gap's length: an edit
    weight then means the same for every estimator.
    """
    both = torch.cat([src.vectors, tgt.vectors]).double()
    centred = both - both.mean(0)
    # The first right-singular vector of the centred data is the first principal axis.
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    axis = vh[0]
    mean = (tgt.vectors.mean(0) - src.vectors.mean(0)).double()
    if torch.dot(axis, mean) < 0:
        axis = -axis
    return (axis * mean.norm()).to(src.vectors.dtype), {"oriented": "source->target", "scaled_to": "mean-gap-norm"}


def class_mean_gap(src: Embeddings, tgt: Embeddings) -> tuple[torch.Tensor, dict]:
    """Mean over classes of per-class mean gaps, for folders of class folders.

    Each class shared by both sides weighs the same, however many images it has, so a class that
    dominates one folder cannot tilt the gap towards its own content.
    """
    shared = sorted(set(src.classes) & set(tgt.classes) - {""})
    if not shared:
        raise DogeError(
            "estimator 'class-mean' needs class folders with the same names under --src and --tgt "
            f"(source classes: {', '.join(src.classes) or 'none'}; target: {', '.join(tgt.classes) or 'none'}); "
            "use --estimator mean for flat folders"
        )
    per_class = [_class_mean(tgt, c) - _class_mean(src, c) for c in shared]
    return torch.stack(per_class).mean(0), {"classes": shared}


def _class_mean(emb: Embeddings, label: str) -> torch.Tensor:
    rows = [i for i, lab in enumerate(emb.labels) if lab == label]
    return emb.vectors[rows].mean(0)
