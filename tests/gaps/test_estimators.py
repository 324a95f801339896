import pytest
import torch

from doge import pluginmanager
from doge.data.embeddings import Embeddings
from doge.errors import DogeError


def emb(rows, labels=None):
    vectors = torch.tensor(rows, dtype=torch.float32)
    return Embeddings(vectors=vectors, labels=labels or [""] * len(rows))


def estimate(name, src, tgt):
    return pluginmanager.get("estimators", name)(src, tgt)


def test_mean_is_target_mean_minus_source_mean():
    src = emb([[0, 0], [2, 0]])  # mean (1, 0)
    tgt = emb([[1, 3], [3, 5], [2, 4]])  # mean (2, 4)
    vector, params = estimate("mean", src, tgt)
    assert vector.tolist() == [1.0, 4.0]
    assert params == {}


def test_median_ignores_an_outlier_that_moves_the_mean():
    src = emb([[0, 0], [0, 0], [0, 0]])
    tgt = emb([[1, 1], [1, 1], [1000, -1000]])
    median, _ = estimate("median", src, tgt)
    mean, _ = estimate("mean", src, tgt)
    assert median.tolist() == [1.0, 1.0]
    assert mean[0] > 300


def test_median_of_an_even_count_is_the_midpoint():
    src = emb([[0.0], [0.0]])
    tgt = emb([[1.0], [3.0], [5.0], [7.0]])
    vector, _ = estimate("median", src, tgt)
    assert vector.tolist() == [4.0]


def test_pca_is_the_principal_axis_oriented_and_scaled_to_the_mean_gap():
    # Both sets spread along x; target sits +x of source, with a small y offset.
    src = emb([[-3, 0], [-1, 0.2], [-2, -0.2]])
    tgt = emb([[1, 0.5], [3, 0.7], [2, 0.3]])
    vector, params = estimate("pca", src, tgt)
    mean, _ = estimate("mean", src, tgt)
    # Axis from an independent computation: eigenvector of the covariance with the largest eigenvalue.
    both = torch.cat([src.vectors, tgt.vectors]).double()
    cov = torch.cov(both.T)
    values, vectors = torch.linalg.eigh(cov)
    axis = vectors[:, values.argmax()]
    axis = axis if torch.dot(axis, mean.double()) > 0 else -axis
    assert torch.allclose(vector.double(), axis * mean.double().norm(), atol=1e-5)
    assert torch.dot(vector, mean) > 0
    assert params["oriented"] == "source->target"


def test_pca_orientation_does_not_depend_on_the_svd_sign():
    src = emb([[3, 0], [1, 0.1], [2, -0.1]])
    tgt = emb([[-1, 0], [-3, 0.1], [-2, -0.1]])  # target lies -x of source
    vector, _ = estimate("pca", src, tgt)
    assert vector[0] < 0
    assert vector.norm().item() == pytest.approx(4.0, rel=1e-4)


def test_class_mean_weighs_each_class_the_same():
    # class a: gap (+1, 0) over many images; class b: gap (0, +3) over one image.
    src = emb([[0, 0]] * 4 + [[0, 0]], labels=["a"] * 4 + ["b"])
    tgt = emb([[1, 0]] * 4 + [[0, 3]], labels=["a"] * 4 + ["b"])
    vector, params = estimate("class-mean", src, tgt)
    assert vector.tolist() == [0.5, 1.5]
    assert params == {"classes": ["a", "b"]}
    mean, _ = estimate("mean", src, tgt)
    assert mean.tolist() != vector.tolist()


def test_class_mean_uses_only_classes_on_both_sides():
    src = emb([[0, 0], [5, 5]], labels=["a", "only-src"])
    tgt = emb([[2, 2]], labels=["a"])
    vector, params = estimate("class-mean", src, tgt)
    assert vector.tolist() == [2.0, 2.0]
    assert params["classes"] == ["a"]


def test_class_mean_on_flat_folders_names_the_fix():
    with pytest.raises(DogeError, match="--estimator mean"):
        estimate("class-mean", emb([[0, 0]]), emb([[1, 1]]))
