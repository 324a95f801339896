"""render --fit keep on a thin strip: one line about it, and the rest of the folder renders."""

import json

import numpy as np
import pytest
from helpers import doge
from PIL import Image

FAST = ["--size", "64", "--steps", "2"]


@pytest.fixture(scope="module")
def home(gap_home):
    """conftest's registry holding real->painting@v1, shared by this module's tests."""
    return gap_home


def test_keep_skips_a_thin_strip_with_one_line_and_renders_the_rest(home, tiny_model, tmp_path, caplog):
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(src / "photo.png")
    Image.new("RGB", (1, 400), "red").save(src / "strip.png")  # once a 64x25600 render under keep
    out = tmp_path / "out"
    result = doge("--home", home, "--quiet", "render", "--gap", "real->painting", "--src", src, "--out", out,
                  "--model", tiny_model, "--control", "none", "--fit", "keep", *FAST)  # fmt: skip
    assert result.exit_code == 0, result.output
    warned = [r.getMessage() for r in caplog.records if "strip.png" in r.getMessage()]
    assert len(warned) == 1 and "--fit pad" in warned[0] and "1x400" in warned[0], warned
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [Image.open(out / line["image"]).size for line in lines] == [(64, 64)]
    assert [p.name for p in (out / "images").iterdir()] == ["photo_0.png"]
