"""The shape of doge's code that callers rely on: options travel as values (no function takes a long
tail of parameters), and every value folds keywords into one home."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from doge.errors import DogeError

ROOT = Path(__file__).resolve().parents[2]
MOST_PARAMETERS = 12
# Mirrors diffusers' StableUnCLIPImg2ImgPipeline.__call__ (keyword for keyword, so a diffusers
# user's call works on doge's pipeline); tests/rendering/test_diffusers_copies.py watches it.
MIRRORS_UPSTREAM = {"doge/rendering/pipeline.py:__call__"}


def _functions():
    for folder in ("doge", "plugins", "registry", "cli"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    yield f"{path.relative_to(ROOT)}:{node.name}", node


def test_no_function_takes_more_than_a_dozen_parameters():
    too_many = {}
    for where, node in _functions():
        a = node.args
        names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs) if x.arg not in ("self", "cls")]
        if len(names) > MOST_PARAMETERS and where not in MIRRORS_UPSTREAM:
            too_many[where] = len(names)
    assert not too_many, f"group these options into a value (doge.runtime, doge.augmentation.options): {too_many}"


def test_each_keyword_has_one_home_among_the_values_a_function_folds():
    from doge.augmentation.options import Budget, DatasetInput, Layout, Refill
    from doge.gaps.options import Sampling, TextSides
    from doge.rendering.settings import RenderSettings
    from doge.runtime import Runtime, field_names

    for values in ((DatasetInput, Budget, Refill, Layout, RenderSettings, Runtime), (TextSides, Sampling, Runtime)):
        seen: dict[str, str] = {}
        for cls in values:
            for name in field_names(cls):
                assert name not in seen, f"{name} is a field of {seen[name]} and {cls.__name__}"
                seen[name] = cls.__name__


def test_values_are_checked_when_made_and_keywords_fold_into_them():
    from doge.augmentation.options import Budget, Layout, Refill
    from doge.runtime import Runtime, fold_keywords

    with pytest.raises(DogeError, match="--format 'csv'"):
        Layout(output_format="csv")
    with pytest.raises(DogeError, match="--max-tries"):
        Refill(max_tries=0)
    for bad in (0, 2.5, "4", True):
        with pytest.raises(DogeError, match=f"batch_size {bad!r}: use a whole number of at least 1"):
            Runtime(batch_size=bad)
    with pytest.raises(DogeError, match="workers -1: use a whole number of at least 0"):
        Runtime(workers=-1)
    assert Runtime(batch_size=np.int64(8)).batch(4) == 8 and Runtime(workers=0).workers == 0
    layout, budget, runtime = fold_keywords(
        "augment",
        {"per_class": 3, "with_sources": "copy", "device": "cpu"},
        (Layout, None),
        (Budget, Budget(ratio=None, weights="1,2")),
        (Runtime, Runtime(workers=0)),
    )
    assert (layout.with_sources, budget.per_class, budget.weights) == ("copy", 3, (1.0, 2.0))
    assert (runtime.device, runtime.workers) == ("cpu", 0)
    with pytest.raises(DogeError, match=r"^augment\(\) got unknown option\(s\) per_clas; it takes: .*per_class"):
        fold_keywords("augment", {"per_clas": 3}, (Budget, None))


def test_a_misspelt_keyword_is_named_before_any_value_checks_the_others():
    from doge.augmentation.options import Layout
    from doge.runtime import fold_keywords

    with pytest.raises(DogeError, match=r"^augment\(\) got unknown option\(s\) stepz;"):
        fold_keywords("augment", {"output_format": "csv", "stepz": 2}, (Layout, None))


def test_a_runtime_setting_a_function_cannot_use_is_refused(tmp_path):
    from doge.api import create_gap

    with pytest.raises(DogeError, match=r"create_gap\(\) does not use dtype=; leave it out"):
        create_gap("a->b", tmp_path, tmp_path, dtype="fp16", home=tmp_path / "home")
    assert not (tmp_path / "home").exists()  # refused before the registry opened


def test_a_value_of_the_wrong_kind_or_with_wrong_fields_is_one_line():
    from doge.augmentation.options import Budget, DatasetInput, Layout, Refill
    from doge.gaps.options import Sampling
    from doge.runtime import fold_keywords

    with pytest.raises(
        DogeError, match=r"^augment\(\) takes a Budget \(doge.augmentation.options.Budget\) there, got int"
    ):
        fold_keywords("augment", {}, (DatasetInput, None), (Budget, 5))
    with pytest.raises(DogeError, match=r"takes a DatasetInput .* got Budget"):
        fold_keywords("augment", {}, (DatasetInput, Budget()))
    for make, said in [
        (lambda: Refill(min_target_score="x"), "--min-target-score 'x': give a number"),
        (lambda: Refill(min_source_similarity=float("nan")), "--min-source-similarity nan: give a finite number"),
        (lambda: Refill(max_tries=2.5), "--max-tries 2.5: use a whole number of at least 1"),
        (lambda: Budget(per_class="3"), "--per-class '3': use a whole number of at least 1"),
        (lambda: Budget(count=0), "--count 0: use a whole number of at least 1"),
        (lambda: Budget(ratio=0), "--ratio 0: give a number above 0"),
        (lambda: Budget(balance="yes"), "balance 'yes': give True or False"),
        (lambda: Layout(shard_size=0), "--shard-size 0: use a whole number of at least 1"),
        (lambda: Sampling(src_limit=0), "--src-limit 0: use a whole number of at least 1"),
        (lambda: Sampling(seed=1.5), "--seed 1.5: use a whole number"),
    ]:
        with pytest.raises(DogeError, match=re.escape(said)):
            make()


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"steps": 0}, "--steps 0: use a whole number of at least 1"),
        ({"steps": 2.5}, "--steps 2.5: use a whole number"),
        ({"size": 10**6}, "--size 1000000: use at most 4096"),
        ({"size": 60}, "--size 60: use a multiple of 8, at least 64"),
        ({"size": "64"}, "--size '64': use a whole number"),
        ({"edit_weight": 1e300}, "--edit-weight 1e+300: use a number from -1e+06 to 1e+06"),
        ({"guidance": "x"}, "--guidance 'x': give a number"),
        ({"seed": -1}, "--seed -1: use a whole number of at least 0"),
        ({"prompt": 5}, "--prompt 5: give text"),
    ],
)
def test_render_settings_check_their_numbers_when_made(fields, said):
    from doge.rendering.settings import RenderSettings

    with pytest.raises(DogeError, match=re.escape(said)):
        RenderSettings(**fields)


def test_devices_sweeps_weights_and_references_are_checked_up_front():
    from doge.augmentation.options import Refill
    from doge.devices import pick_device
    from doge.quality.evaluate import _weights
    from doge.rendering.plan import sweep_weights

    with pytest.raises(DogeError, match=r"--device 'bogus': use cuda \(or cuda:N\), mps, cpu or auto"):
        pick_device("bogus")
    assert pick_device("cpu") == "cpu"
    with pytest.raises(DogeError, match="COUNT must be at most 1000"):
        sweep_weights("1:2:100000000")
    with pytest.raises(DogeError, match="give both --ref-src and --ref-tgt"):
        Refill(filter=True, filter_src="refs/real")
    assert _weights([2, 0, 1, 1]) == [0.0, 1.0, 2.0]
    for bad, said in (([], "give 1 to 1000 edit weights, not 0"), (["x"], "--weights 'x': give a number"),
                      ([float("nan")], "give a finite number"), (5, "give a list of edit weights")):  # fmt: skip
        with pytest.raises(DogeError, match=re.escape(said)):
            _weights(bad)


def test_weights_texts_refs_and_runtime_fields_are_checked_when_made():
    from doge.augmentation.options import Budget
    from doge.gaps.options import TextSides
    from doge.names import parse_ref
    from doge.runtime import Runtime

    assert Budget(weights="1,1.5").weights == (1.0, 1.5) and Budget(weights=[2]).weights == (2.0,)
    for bad in ([], "", ["x"], [float("inf")], "1,,x"):
        with pytest.raises(DogeError, match="--weights .*: write numbers separated by commas"):
            Budget(weights=bad)
    for make, said in [
        (lambda: TextSides(src_text=5), "--src-text 5: give text"),
        (lambda: TextSides(classes=5), "--classes 5: give names separated by commas"),
        (lambda: parse_ref(None), "a gap ref is text such as"),
        (lambda: Runtime(ray=True), "ray True: give 'local', 'auto' or a cluster address"),
        (lambda: Runtime(registry="/tmp/reg"), "registry '/tmp/reg': give an open Registry"),
    ]:
        with pytest.raises(DogeError, match=re.escape(said)):
            make()
