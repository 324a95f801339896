"""An estimator plugin: the mean gap, keeping only its strongest coordinates.

A mean gap moves every coordinate of an embedding a little, including the many that only differ
by chance between two small folders. ``sparse-mean`` keeps the share ``keep`` of coordinates
where the mean gap is largest and zeroes the rest, then rescales the result to the mean gap's
length, so that edit weights mean the same as for ``mean``::

    doge gap create 'real->painting' --src data/real --tgt data/painting \\
        --estimator sparse-mean --estimator-option keep=0.25
"""

from __future__ import annotations

import math

import torch

from doge.plugin import DogeError, hookimpl


def sparse_mean_gap(src, tgt, keep: float = 0.5):
    """``src`` and ``tgt`` are :class:`doge.data.embeddings.Embeddings` (``.vectors`` is [N, dim]).

    Returns the gap and the params stored in its provenance: the options used, and what was measured.
    """
    if not 0 < keep <= 1:
        # a user's mistake is a DogeError: the CLI prints it as one line, not a traceback
        raise DogeError(f"keep={keep}: give a share of the coordinates, above 0 and at most 1")
    mean_gap = tgt.vectors.float().mean(0) - src.vectors.float().mean(0)
    count = max(1, math.ceil(keep * mean_gap.numel()))
    strongest = mean_gap.abs().topk(count).indices
    gap = torch.zeros_like(mean_gap)
    gap[strongest] = mean_gap[strongest]
    gap *= mean_gap.norm() / gap.norm().clamp_min(1e-12)
    return gap, {"keep": keep, "coordinates": count}


@hookimpl
def register_estimators(register):
    register("sparse-mean", sparse_mean_gap)
