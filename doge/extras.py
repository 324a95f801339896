"""The tensors a gap file may carry beside its vector, with their shapes.

The estimators make them (coral), :mod:`doge.gaps.shifting` applies them, and the registry checks
them in every gap file it reads; this base module is the one place that names them.
"""

from __future__ import annotations

CORAL_TRANSFORM = "coral.transform"  # [D, D]
CORAL_SOURCE_MEAN = "coral.source_mean"  # [D]


def extra_shapes(dim: int) -> dict[str, tuple[int, ...]]:
    """The optional tensors a gap of width ``dim`` may carry, with their shapes."""
    return {CORAL_TRANSFORM: (dim, dim), CORAL_SOURCE_MEAN: (dim,)}
