"""Gaps that are no gaps (a folder against itself, an empty or identical text side) are refused and
nothing is stored."""

import pytest
from helpers import doge


@pytest.fixture(scope="module")
def home(gap_home):
    """conftest's registry holding real->painting@v1, shared by this module's tests."""
    return gap_home


# -- gaps that are no gaps ------------------------------------------------------------------------


def versions(home, name):
    from doge.registry import Registry

    registry = Registry(home=home)
    try:
        return [v.version for v in registry.list(name)]
    finally:
        registry.close()


def test_a_gap_between_a_folder_and_itself_is_refused_and_nothing_stored(home, tiny_model, domains):
    # once stored as 'created same->same@v1 ... |gap| 0.0000': a gap that moves nothing
    result = doge("--home", home, "--quiet", "gap", "create", "same->same", "--src", domains["real"], "--tgt", domains["real"],
                  "--model", tiny_model)  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "the gap is zero" in result.output and "same" in result.output.splitlines()[-1], result.output
    assert versions(home, "same->same") == []


@pytest.mark.parametrize(("src_text", "tgt_text"), [("", "a painting"), ("a photo", "   "), ("a photo", "a photo")])
def test_an_empty_or_identical_text_side_is_refused_and_nothing_stored(home, tiny_model, src_text, tgt_text):
    result = doge("--home", home, "--quiet", "gap", "create", "photo->text", "--src-text", src_text, "--tgt-text", tgt_text,
                  "--model", tiny_model)  # fmt: skip
    assert result.exit_code == 1, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: ") and ("is empty" in line or "the gap is zero" in line), result.output
    assert versions(home, "photo->text") == []
