"""Settings as values: RenderSettings (what decides the pixels) and Runtime (how it runs), and the
click options that build them, each declared once."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from doge.errors import DogeError
from doge.rendering.recipes import DEFAULTS, PAPER_NEGATIVE_PROMPT
from doge.rendering.settings import RenderSettings, settings_from_keywords
from doge.runtime import Runtime

CLI = Path(__file__).resolve().parents[2] / "cli"


def test_render_settings_are_a_frozen_value_with_the_recipe_resolved_once():
    s = RenderSettings(recipe="paper", fit="keep", steps=5)
    assert (s.fit, s.steps, s.guidance, s.negative_prompt) == ("keep", 5, 5.0, PAPER_NEGATIVE_PROMPT)
    assert s.control_options == {"canny": {"maps": "paper", "low": 100, "high": 800}}
    plain = RenderSettings()
    assert {k: getattr(plain, k) for k in DEFAULTS} == DEFAULTS and plain.control_options == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.steps = 7  # type: ignore[misc]
    with pytest.raises(DogeError, match="--recipe 'fast'"):
        RenderSettings(recipe="fast")


def test_keywords_fold_into_the_values_and_an_unknown_one_is_one_line():
    s, rt = settings_from_keywords(None, None, {"steps": 3, "device": "cpu", "controls": ["none"]}, "render")
    assert (s.steps, s.controls, rt.device, rt.batch_size) == (3, ("none",), "cpu", None)
    assert (rt.batch(4), Runtime(batch_size=2).batch(4)) == (4, 2)  # None: the job's own default
    given = RenderSettings(recipe="paper")
    s2, _ = settings_from_keywords(given, Runtime(batch_size=2), {"size": 64}, "render")
    assert (s2.size, s2.fit, s2.recipe) == (64, "crop", "paper") and given.size == 768
    with pytest.raises(DogeError, match=r"^render\(\) got unknown option\(s\) stepz; it takes: "):
        settings_from_keywords(None, None, {"stepz": 3}, "render")


@pytest.mark.parametrize(
    "flag",
    [
        "--json",
        "--device",
        "--dtype",
        "--batch-size",
        "--workers",
        "--ray",
        "--seed",
        "--model",
        "--steps",
        "--control",
    ],
)
def test_each_shared_option_is_declared_once(flag):
    declared = [
        f"{path.name}:{n}"
        for path in sorted(CLI.glob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(rf'"{re.escape(flag)}"', line)
    ]
    assert len(declared) == 1, declared


def test_render_augment_and_preview_share_the_render_options():
    from click.testing import CliRunner

    from doge.cli.main import get_cli

    for argv in (["render"], ["augment"], ["gap", "preview"]):
        text = CliRunner().invoke(get_cli(), [*argv, "--help"]).output
        for flag in ("--steps", "--guidance", "--seed", "--size", "--control", "--device", "--batch-size", "--json"):
            assert flag in text, (argv, flag)
