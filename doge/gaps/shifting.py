"""Moving embeddings by a gap: ``x + w * gap``, or CORAL's affine map when the gap carries one.

This is the one place that says what applying a gap means; render and ``doge gap eval`` both
call it. It imports no torch itself.
"""

from __future__ import annotations

from doge.extras import CORAL_SOURCE_MEAN, CORAL_TRANSFORM


def is_coral(extras) -> bool:
    return bool(extras) and CORAL_TRANSFORM in extras


def shift(x, vector, weight: float, extras=None):
    """Embeddings ``x`` ``[N, D]`` moved by ``weight`` times the gap.

    Plain gap: ``x + w * gap``. CORAL gap: with ``f(x) = (x - mean_s) T + mean_s + gap`` (the
    source's covariance mapped onto the target's and its mean onto the target's mean), ``x`` moves
    to ``x + w (f(x) - x)``: the identity at w=0, CORAL at w=1, and ``x + w * gap`` when T is
    the identity. Works on torch tensors and numpy arrays alike.
    """
    if not is_coral(extras):
        return x + weight * vector
    mean_s = extras[CORAL_SOURCE_MEAN]
    mapped = (x - mean_s) @ extras[CORAL_TRANSFORM] + mean_s + vector
    return x + weight * (mapped - x)
