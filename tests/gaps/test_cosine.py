"""Cosine similarity: one implementation, pinned against a hand computation, zero vectors included."""

import math

import numpy as np
import pytest
import torch

from doge.gaps.compare import cosine, gap_diff


def test_cosine_against_a_hand_computation():
    a, b = np.array([3.0, 4.0, 0.0]), np.array([4.0, 3.0, 0.0])
    assert cosine(a, b) == pytest.approx(24 / 25)
    assert cosine(a, 2 * a) == pytest.approx(1.0)
    assert cosine(a, -a) == pytest.approx(-1.0)
    assert cosine(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == 0.0


def test_cosine_takes_tensors_and_arrays_alike():
    a, b = torch.randn(16, generator=torch.Generator().manual_seed(0)), torch.randn(16)
    expected = float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0))
    assert cosine(a, b) == pytest.approx(expected, abs=1e-12)
    assert cosine(a.numpy().astype(np.float32), b.numpy()) == pytest.approx(expected, abs=1e-6)


def test_a_zero_vector_has_no_cosine_anywhere():
    """NaN, not 0.0: a zero vector has no direction, and 0.0 would read as "orthogonal"."""
    zero, v = np.zeros(4, np.float32), np.ones(4, np.float32)
    assert math.isnan(cosine(zero, v)) and math.isnan(cosine(v, zero))
    assert math.isnan(gap_diff("a@v1", zero, {}, "b@v1", v, {})["cosine"])
