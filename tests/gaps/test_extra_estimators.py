"""The estimators beyond the paper: trimmed-mean, lda, coral; and how a gap moves embeddings."""

import numpy as np
import pytest
import torch
from helpers import make_gap_home, render_tiny

from doge import pluginmanager
from doge.data.embeddings import Embeddings
from doge.errors import DogeError
from doge.extras import CORAL_SOURCE_MEAN, CORAL_TRANSFORM
from doge.gaps.shifting import shift


def emb(x):
    x = torch.as_tensor(x, dtype=torch.float32)
    return Embeddings(vectors=x, labels=[""] * len(x))


def estimate(name, src, tgt, **params):
    return pluginmanager.get("estimators", name)(src, tgt, **params)


def gaussian(n, mean, scales, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, len(scales), generator=g) * torch.tensor(scales) + torch.tensor(mean)


def test_trimmed_mean_drops_the_tails_of_each_coordinate():
    src = emb([[0.0, 0.0]] * 10)
    tgt = emb([[1.0, 2.0]] * 9 + [[100.0, -100.0]])  # one odd image
    vector, params = estimate("trimmed-mean", src, tgt, trim=0.1)
    assert vector.tolist() == pytest.approx([1.0, 2.0])
    assert params == {"trim": 0.1}
    mean, _ = estimate("mean", src, tgt)
    assert mean[0] > 10


def test_trimmed_mean_equals_the_mean_when_too_few_images_to_trim():
    src, tgt = emb(gaussian(5, [0, 0, 0], [1, 1, 1], 0)), emb(gaussian(6, [1, 2, 3], [1, 1, 1], 1))
    trimmed, _ = estimate("trimmed-mean", src, tgt)
    mean, _ = estimate("mean", src, tgt)
    assert torch.allclose(trimmed, mean, atol=1e-6)


def test_trimmed_mean_refuses_a_trim_of_half_or_more():
    with pytest.raises(DogeError, match="trim"):
        estimate("trimmed-mean", emb([[0.0]] * 4), emb([[1.0]] * 4), trim=0.5)


def test_lda_is_fishers_direction_scaled_to_the_mean_gap():
    # Within each domain images spread a lot along x; the domains differ along x and y.
    src = emb(gaussian(400, [0, 0], [5.0, 0.5], 0))
    tgt = emb(gaussian(400, [2, 1], [5.0, 0.5], 1))
    vector, params = estimate("lda", src, tgt, shrinkage=0.0)
    mean, _ = estimate("mean", src, tgt)
    # Independent computation: pooled covariance with numpy, solve.
    s, t = src.vectors.double().numpy(), tgt.vectors.double().numpy()
    pooled = (np.cov(s.T) * (len(s) - 1) + np.cov(t.T) * (len(t) - 1)) / (len(s) + len(t) - 2)
    fisher = np.linalg.solve(pooled, t.mean(0) - s.mean(0))
    fisher *= np.linalg.norm(mean.numpy()) / np.linalg.norm(fisher)
    assert vector.numpy() == pytest.approx(fisher, rel=1e-4)
    assert float(vector.norm()) == pytest.approx(float(mean.norm()), rel=1e-5)
    # It turns away from x, the direction in which images of one domain already differ.
    assert abs(vector[1] / vector[0]) > 5 * abs(mean[1] / mean[0])
    assert params["shrinkage"] == 0.0


def test_lda_separates_the_domains_better_than_the_mean_gap():
    src = emb(gaussian(300, [0, 0, 0], [4.0, 0.3, 1.0], 2))
    tgt = emb(gaussian(300, [1, 0.5, 0], [4.0, 0.3, 1.0], 3))

    def fisher_ratio(direction):
        u = direction / direction.norm()
        ps, pt = src.vectors @ u, tgt.vectors @ u
        return float((pt.mean() - ps.mean()) ** 2 / (ps.var() + pt.var()))

    lda, _ = estimate("lda", src, tgt)
    mean, _ = estimate("mean", src, tgt)
    assert fisher_ratio(lda) > 2 * fisher_ratio(mean)


def test_lda_full_shrinkage_is_the_mean_direction_and_auto_matches_ledoit_wolf():
    from sklearn.covariance import ledoit_wolf_shrinkage

    src, tgt = emb(gaussian(8, [0] * 20, [1.0] * 20, 4)), emb(gaussian(9, [1] * 20, [2.0] * 20, 5))
    full, _ = estimate("lda", src, tgt, shrinkage=1.0)
    mean, _ = estimate("mean", src, tgt)
    assert torch.allclose(full, mean, atol=1e-5)
    _, params = estimate("lda", src, tgt)
    centred = torch.cat([src.vectors - src.vectors.mean(0), tgt.vectors - tgt.vectors.mean(0)]).double().numpy()
    assert params["shrinkage"] == pytest.approx(ledoit_wolf_shrinkage(centred, assume_centered=True), abs=1e-6)
    with pytest.raises(DogeError, match="shrinkage"):
        estimate("lda", src, tgt, shrinkage=2.0)


def test_coral_maps_source_mean_and_covariance_onto_the_target():
    src = emb(gaussian(4000, [0, 0, 0], [1.0, 2.0, 0.5], 6))
    tgt = emb(gaussian(4000, [3, -1, 2], [2.0, 0.5, 1.5], 7))
    vector, params, extras = estimate("coral", src, tgt, ridge=1e-6)
    mean, _ = estimate("mean", src, tgt)
    assert torch.equal(vector, mean)  # the stored vector is the mean gap
    assert extras[CORAL_TRANSFORM].shape == (3, 3) and extras[CORAL_SOURCE_MEAN].shape == (3,)
    moved = shift(src.vectors, vector, 1.0, extras)
    assert torch.allclose(moved.mean(0), tgt.vectors.mean(0), atol=1e-3)
    assert torch.allclose(torch.cov(moved.T), torch.cov(tgt.vectors.T), rtol=0.02, atol=0.02)
    assert params == {"ridge": 1e-6}


def test_coral_between_equal_covariances_is_the_mean_gap_shift():
    base = gaussian(50, [0, 0, 0, 0], [1.0, 2.0, 3.0, 0.5], 8)
    src, tgt = emb(base), emb(base + torch.tensor([1.0, 0.0, -2.0, 0.5]))
    vector, _, extras = estimate("coral", src, tgt)
    assert torch.allclose(extras[CORAL_TRANSFORM], torch.eye(4), atol=1e-5)
    x = gaussian(5, [1, 1, 1, 1], [1.0] * 4, 9)
    assert torch.allclose(shift(x, vector, 0.7, extras), x + 0.7 * vector, atol=1e-5)


def test_coral_with_few_images_is_finite_and_leaves_unspanned_directions_alone():
    src, tgt = emb(gaussian(5, [0] * 64, [1.0] * 64, 10)), emb(gaussian(6, [1] * 64, [3.0] * 64, 11))
    _vector, _, extras = estimate("coral", src, tgt)
    transform = extras[CORAL_TRANSFORM]
    assert bool(transform.isfinite().all())
    # A direction orthogonal to both sets' spreads is mapped to itself.
    spans = torch.cat([src.vectors - src.vectors.mean(0), tgt.vectors - tgt.vectors.mean(0)]).double()
    _, _, vh = torch.linalg.svd(spans, full_matrices=True)
    outside = vh[-1].float()
    assert torch.allclose(outside @ transform, outside, atol=1e-4)


def test_shift_at_weight_zero_is_the_identity_for_every_kind_of_gap():
    src, tgt = emb(gaussian(20, [0] * 3, [1.0] * 3, 12)), emb(gaussian(20, [1] * 3, [2.0] * 3, 13))
    x = gaussian(4, [0] * 3, [1.0] * 3, 14)
    for name in ("mean", "coral"):
        out = estimate(name, src, tgt)
        extras = out[2] if len(out) > 2 else None
        assert torch.allclose(shift(x, out[0], 0.0, extras), x)


@pytest.mark.parametrize("name", ["trimmed-mean", "lda", "coral"])
def test_new_estimators_are_registered_with_their_reasoning(name):
    fn = pluginmanager.get("estimators", name)
    assert len(fn.__doc__.split()) > 40  # the reasoning is in the docstring


# -- a coral gap stored, exported, imported and rendered ----------------------------------------


@pytest.fixture(scope="module")
def coral_home(tmp_path_factory, tiny_model, domains):
    home = tmp_path_factory.mktemp("coral-home")
    return make_gap_home(home, tiny_model, domains, ("mean", "coral"), name="real->painting.{estimator}")


def test_a_coral_gap_keeps_its_transform_through_the_registry_and_export(coral_home, tmp_path):
    import doge
    from doge.registry import Registry

    gap = doge.load_gap("real->painting.coral", home=coral_home)
    assert set(gap.extras) == {CORAL_TRANSFORM, CORAL_SOURCE_MEAN}
    assert gap.extras[CORAL_TRANSFORM].shape == (gap.dim, gap.dim)
    reg = Registry(home=coral_home)
    reg.export("real->painting.coral", tmp_path / "coral.safetensors")
    again = reg.import_file(tmp_path / "coral.safetensors", as_name="team->coral")
    assert again.sha256 == gap.sha256
    copy = doge.load_gap("team->coral", home=coral_home)
    assert torch.equal(copy.extras[CORAL_TRANSFORM], gap.extras[CORAL_TRANSFORM])
    assert doge.load_gap("real->painting.mean", home=coral_home).extras == {}


def test_import_accepts_only_the_known_extra_tensors_with_their_shapes(coral_home, tmp_path):
    from safetensors.numpy import save_file

    from doge.registry import Registry

    reg = Registry(home=coral_home)
    cases = {
        "wrong-shape": {"gap": np.ones(4, np.float32), CORAL_TRANSFORM: np.eye(3, dtype=np.float32)},
        "unknown": {"gap": np.ones(4, np.float32), "coral.other": np.ones(4, np.float32)},
        "float64": {"gap": np.ones(4, np.float32), CORAL_SOURCE_MEAN: np.ones(4)},
    }
    for name, tensors in cases.items():
        path = tmp_path / f"{name}.safetensors"
        save_file(tensors, str(path), metadata={"doge.name": name})
        with pytest.raises(DogeError):
            reg.import_file(path)
    assert "wrong-shape" not in reg.names()


def test_rendering_with_a_coral_gap_applies_its_transform(coral_home, tiny_model, domains, tmp_path):
    import json

    from PIL import Image

    outs = {}
    for estimator in ("mean", "coral"):
        out = tmp_path / estimator
        render_tiny([f"real->painting.{estimator}"], domains["real"], out, tiny_model, limit=2, home=coral_home)
        outs[estimator] = out
    manifest = [json.loads(x) for x in (outs["coral"] / "manifest.jsonl").read_text().splitlines()]
    assert all(line["gaps"][0]["shift"] == "coral" for line in manifest)
    mean_manifest = (outs["mean"] / "manifest.jsonl").read_text()
    assert '"shift"' not in mean_manifest
    images = sorted(p.name for p in (outs["coral"] / "images").iterdir())
    differ = [
        not np.array_equal(
            np.asarray(Image.open(outs["coral"] / "images" / n)), np.asarray(Image.open(outs["mean"] / "images" / n))
        )
        for n in images
    ]
    assert images and all(differ)


def test_a_coral_gap_cannot_be_added_to_another(coral_home, tiny_model, domains, tmp_path):
    for gaps, message in (
        (["real->painting.coral", "real->painting.mean:0.5"], "coral gap.*cannot be added"),
        (["real->painting.coral:0.5"], "give it no weight.*--edit-weight"),
    ):
        with pytest.raises(DogeError, match=message):
            render_tiny(gaps, domains["real"], tmp_path / "out", tiny_model, home=coral_home)
