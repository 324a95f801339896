"""A stored gap and its encoder: the encoder recorded in provenance must give the gap's width, and
loading checks the width against the registry."""

import numpy as np
import pytest
import torch
from sqlalchemy import update

from doge.data.encoder import encoder_for_gap
from doge.errors import DogeError, IntegrityError
from doge.gaps.gap import Gap
from doge.gaps.store import load_gap


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
