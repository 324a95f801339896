"""Helpers that used to have several copies which disagreed: each now has one home, and these
tests pin the behaviour that was chosen."""

import json
import math

import numpy as np
import pytest
import torch
from sqlalchemy import update

from doge.data.encoder import encoder_for_gap
from doge.errors import DogeError, IntegrityError, first_line
from doge.gaps.compare import cosine, gap_diff
from doge.gaps.gap import Gap
from doge.gaps.store import load_gap
from doge.quality.filtering import verdict


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


def test_filter_rejects_an_undefined_source_similarity_and_records_null():
    record = verdict(0.9, float("nan"), 0.5, 0.8)
    assert record["rejected"] and record["source_similarity"] is None
    assert record["reasons"] == ["source similarity undefined (a zero embedding)"]
    json.dumps(record, allow_nan=False)  # the manifest stays valid JSON
    kept = verdict(0.9, float("nan"), 0.5, None)  # no minimum asked for: nothing to fail
    assert not kept["rejected"] and kept["source_similarity"] is None
    assert verdict(0.9, 0.79, 0.5, 0.8)["reasons"] == ["source similarity 0.790 < 0.8"]


def test_first_line_is_the_message_or_the_type_name():
    assert first_line(ValueError("  bad thing\nmore detail\n")) == "bad thing"
    assert first_line(KeyError()) == "KeyError"


def test_table_lines_align_columns():
    from doge.cli.context import table_lines

    assert table_lines([["a", "long value"], ["bbb", "x"]], ["K", "V"]) == [
        "K    V",
        "a    long value",
        "bbb  x",
    ]


def _gap(provenance: dict, dim: int = 32) -> Gap:
    return Gap("g", 1, torch.zeros(dim), provenance, "0" * 64)


def test_a_gap_without_its_encoder_needs_a_model_named():
    with pytest.raises(DogeError, match="does not record its encoder: pass --model"):
        encoder_for_gap(_gap({}))


def test_the_encoder_for_a_gap_must_give_the_gaps_width(tiny_model):
    gap = _gap({"encoder": {"plugin": "clip", "model": str(tiny_model)}}, dim=7)
    with pytest.raises(DogeError, match=r"gap g@v1 has width 7 but the clip encoder of .* gives 32"):
        encoder_for_gap(gap, device="cpu")
    enc = encoder_for_gap(_gap({"encoder": {"plugin": "clip", "model": str(tiny_model)}}), device="cpu")
    assert enc.dim == 32 and enc.plugin == "clip"


def test_loading_tensors_checks_the_width_as_loading_the_vector_does(registry):
    from doge.registry.models import GapRow

    registry.create("g", np.ones(4, np.float32), {"encoder": {"plugin": "clip"}})
    assert load_gap("g", registry=registry).dim == 4
    with registry._write_engine.begin() as c:
        c.execute(update(GapRow).values(dim=5))
    for load in (registry.load_tensors, registry.load_vector, lambda ref: load_gap(ref, registry=registry)):
        with pytest.raises(IntegrityError, match="blob holds 4 values but the registry says 5"):
            load("g@v1")
