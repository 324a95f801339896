"""`doge gap ...` end to end through the CLI, on real photographs and the tiny model."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from doge.cli.main import get_cli


@pytest.fixture
def run(tmp_path):
    home = tmp_path / "home"

    def invoke(*args, ok=True):
        result = CliRunner().invoke(get_cli(), ["--home", str(home), "--quiet", *map(str, args)])
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return invoke


def direct_embeddings(model_dir, folder):
    """The paper's way, with transformers alone: every image, one forward pass."""
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    processor = CLIPImageProcessor.from_pretrained(model_dir, subfolder="feature_extractor")
    model = CLIPVisionModelWithProjection.from_pretrained(model_dir, subfolder="image_encoder").eval()
    images = [Image.open(p).convert("RGB") for p in sorted(folder.iterdir())]
    with torch.no_grad():
        return model(**processor(images=images, return_tensors="pt")).image_embeds


def test_created_gap_equals_mean_difference_computed_with_transformers(run, tiny_model, domains):
    run(
        "gap",
        "create",
        "real->painting",
        "--src",
        domains["real"],
        "--tgt",
        domains["painting"],
        "--model",
        tiny_model,
        "--batch-size",
        "5",
    )
    shown = json.loads(run("gap", "show", "real->painting", "--json").output)
    assert shown["ref"] == "real->painting@v1"
    assert shown["provenance"]["source"]["images"] == len(list(domains["real"].iterdir()))
    assert shown["provenance"]["encoder"]["model"] == str(tiny_model)

    exported = domains["real"].parent / "gap.safetensors"
    run("gap", "export", "real->painting", exported)
    from safetensors.numpy import load_file

    stored = load_file(str(exported))["gap"]
    expected = direct_embeddings(tiny_model, domains["painting"]).mean(0) - direct_embeddings(
        tiny_model, domains["real"]
    ).mean(0)
    np.testing.assert_allclose(stored, expected.numpy(), rtol=1e-4, atol=1e-5)


def test_versions_aliases_list_diff_and_removal(run, tiny_model, domains):
    common = ["--src", domains["real"], "--tgt", domains["painting"], "--model", tiny_model]
    run("gap", "create", "real->painting", *common)
    run("gap", "create", "real->painting", *common, "--estimator", "median", "--description", "robust")
    run("gap", "tag", "real->painting@v1", "prod")

    listing = json.loads(run("gap", "list", "--json").output)
    assert [(v["ref"], v["aliases"]) for v in listing] == [("real->painting@v1", ["prod"]), ("real->painting@v2", [])]
    assert "real->painting@v2" in run("gap", "list").output

    diff = json.loads(run("gap", "diff", "real->painting@prod", "real->painting", "--json").output)
    assert 0.0 < diff["cosine"] < 1.0
    assert diff["provenance_differences"]["estimator.name"] == ["mean", "median"]

    run("gap", "rm", "real->painting@v2")
    run("gap", "create", "real->painting", *common)
    refs = [v["ref"] for v in json.loads(run("gap", "list", "--json").output)]
    assert refs == ["real->painting@v1", "real->painting@v3"]


def test_export_import_round_trip_keeps_the_sha(run, tiny_model, domains, tmp_path):
    run(
        "gap", "create", "real->painting", "--src", domains["real"], "--tgt", domains["painting"], "--model", tiny_model
    )
    run("gap", "export", "real->painting", tmp_path / "g.safetensors")
    out = run("gap", "import", tmp_path / "g.safetensors", "--as", "shared->painting").output
    assert "shared->painting@v1" in out
    a = json.loads(run("gap", "show", "real->painting", "--json").output)
    b = json.loads(run("gap", "show", "shared->painting", "--json").output)
    assert a["sha256"] == b["sha256"]


def test_user_mistakes_get_one_line(run, tiny_model, domains, tmp_path):
    cases = [
        (["gap", "create", "real-", "--src", domains["real"], "--tgt", domains["painting"]], "quote"),
        (["gap", "create", "x->y", "--src", tmp_path / "nope", "--tgt", domains["painting"]], "does not exist"),
        (
            ["gap", "create", "x->y", "--src", domains["real"], "--tgt", domains["painting"], "--estimator", "meen"],
            "known:",
        ),
        (["gap", "show", "real->paintng"], "real->paint"),
    ]
    run(
        "gap", "create", "real->painting", "--src", domains["real"], "--tgt", domains["painting"], "--model", tiny_model
    )
    for args, expected in cases:
        result = run(*args, ok=False)
        assert result.exit_code != 0
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error:") and expected in lines[0], result.output


def test_help_list_and_show_do_not_import_torch(tmp_path):
    """They answer fast: no torch, nor numpy or Alembic, once the registry exists."""
    from doge.registry import Registry

    Registry(home=tmp_path).create("real->painting", np.ones(4, np.float32), {})
    code = (
        "import sys; from doge.cli.main import main\n"
        "for args in (['--help'], ['--home', sys.argv[1], 'gap', 'list'], ['--home', sys.argv[1], 'gap', 'show',\n"
        "             'real->painting'], ['gap', '--help']):\n"
        "    try: main(args)\n"
        "    except SystemExit: pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'diffusers', 'numpy', 'alembic') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True).stdout
    assert "real->painting@v1" in out and "HEAVY []" in out


def test_models_tiny_writes_a_loadable_model_and_says_it_is_noise(tmp_path):
    result = CliRunner().invoke(get_cli(), ["models", "tiny", str(tmp_path / "tiny")])
    assert result.exit_code == 0, result.output
    assert "noise" in result.output
    from doge.rendering.loading import image_encoder_width

    assert (tmp_path / "tiny" / "controlnet" / "config.json").is_file()
    assert image_encoder_width(str(tmp_path / "tiny")) == 32
    # What gap explain, text gaps and --control hed need, for tests and offline trials.
    assert (tmp_path / "tiny" / "clip-text" / "model.safetensors").is_file()
    assert (tmp_path / "tiny" / "hed" / "ControlNetHED.safetensors").is_file()
