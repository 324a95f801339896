"""`doge render` end to end on the tiny model: outputs, manifest, seeds, resume, controls, errors."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import lines, lines_tolerant, pixels
from PIL import Image

from doge.cli.main import get_cli

FAST = ["--size", "64", "--steps", "2"]


# real->painting@v1 (mean) and @v2 (median)
GAP_ESTIMATORS = ("mean", "median")


@pytest.fixture(scope="module")
def home(gap_home):
    """This module's registry (conftest's gap_home) in place of conftest's empty home."""
    return gap_home


@pytest.fixture
def render(home, tiny_model, domains):
    def invoke(out, *args, ok=True, src=None):
        argv = [
            "--home",
            str(home),
            "--quiet",
            "render",
            "--src",
            str(src or domains["real"]),
            "--out",
            str(out),
            "--model",
            str(tiny_model),
            *FAST,
            *map(str, args),
        ]
        result = CliRunner().invoke(get_cli(), argv)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return invoke


def test_outputs_and_a_complete_manifest(render, tmp_path, net, domains):
    out = tmp_path / "out"
    render(out, "--gap", "real->painting", "--controlnet", net, "--limit", "2", "-n", "2", "--grid")
    images = sorted(p.name for p in (out / "images").iterdir())
    assert len(images) == 4 and all(name.endswith(("_0.png", "_1.png")) for name in images)
    assert all(Image.open(out / "images" / name).size == (64, 64) for name in images)
    assert len(list((out / "controls").iterdir())) == 2
    assert len(list((out / "grid").iterdir())) == 1
    entries = lines(out)
    assert sorted(e["image"] for e in entries) == [f"images/{n}" for n in images]
    entry = entries[0]
    source = Path(entry["source"])
    import hashlib

    assert entry["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert entry["gaps"][0]["ref"] == "real->painting@v2" and len(entry["gaps"][0]["sha256"]) == 64
    assert entry["controls"][0]["name"] == "canny" and entry["controls"][0]["controlnet"] == str(net)
    for key in (
        "seed",
        "edit_weight",
        "steps",
        "guidance",
        "prompt",
        "negative_prompt",
        "noise_level",
        "size",
        "model",
        "doge_version",
        "lora",
        "control_start",
        "control_end",
        "guess_mode",
        "dtype",
        "device",
    ):
        assert key in entry, key
    assert entry["tiny_model"] is True
    assert len({e["seed"] for e in entries}) == 4


def test_same_images_whatever_the_batch_size(render, tmp_path, net):
    common = ["--gap", "real->painting", "--controlnet", net, "--limit", "3", "-n", "2"]
    render(tmp_path / "b1", *common, "--batch-size", "1")
    render(tmp_path / "b4", *common, "--batch-size", "5")  # a batch spanning three sources
    one, four = pixels(tmp_path / "b1"), pixels(tmp_path / "b4")
    assert one.keys() == four.keys() and len(one) == 6
    for name in one:
        # Same seeds, same noise; batched kernels may round the last bit differently.
        assert np.abs(one[name].astype(int) - four[name].astype(int)).max() <= 1
    seeds = lambda out: {e["image"]: e["seed"] for e in lines(out)}  # noqa: E731
    assert seeds(tmp_path / "b1") == seeds(tmp_path / "b4")


def test_resume_generates_nothing_new_and_finishes_a_half_done_run(render, tmp_path, net):
    out = tmp_path / "out"
    common = ["--gap", "real->painting", "--controlnet", net, "--limit", "2", "-n", "2"]
    render(out, *common)
    before = pixels(out)
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()}

    again = render(out, *common, "--json")
    assert json.loads(again.stdout)["written"] == [] and json.loads(again.stdout)["skipped"] == 4
    assert {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()} == stamps

    # A run killed mid-way: one image gone, the manifest's last line torn.
    victim = sorted(before)[-1]
    (out / "images" / victim).unlink()
    text = (out / "manifest.jsonl").read_text().splitlines()
    (out / "manifest.jsonl").write_text("\n".join(text[:-1]) + "\n" + text[-1][:30])
    resumed = json.loads(render(out, *common, "--json").stdout)
    assert resumed["written"] == [f"images/{victim}"]
    after = pixels(out)
    assert np.abs(after[victim].astype(int) - before[victim].astype(int)).max() <= 1  # batch of 1 vs 4
    assert len({e["image"] for e in lines_tolerant(out)}) == 4


def test_other_settings_into_the_same_folder_are_refused(render, tmp_path, net):
    out = tmp_path / "out"
    render(out, "--gap", "real->painting", "--controlnet", net, "--limit", "1")
    result = render(out, "--gap", "real->painting", "--controlnet", net, "--limit", "1", "--guidance", "7", ok=False)
    assert result.exit_code != 0 and "other settings" in result.output


def test_the_control_image_matters(render, tmp_path, net):
    render(tmp_path / "canny", "--gap", "real->painting", "--controlnet", net, "--limit", "2")
    render(tmp_path / "none", "--gap", "real->painting", "--control", "none", "--limit", "2")
    render(
        tmp_path / "soft",
        "--gap",
        "real->painting",
        "--controlnet",
        net,
        "--limit",
        "2",
        "--canny-low",
        "10",
        "--canny-high",
        "50",
    )
    canny, none, soft = pixels(tmp_path / "canny"), pixels(tmp_path / "none"), pixels(tmp_path / "soft")
    for name in canny:
        assert not np.array_equal(canny[name], none[name])
        assert not np.array_equal(canny[name], soft[name])
    assert not (tmp_path / "none" / "controls").exists()


def test_depth_seg_and_several_controlnets(render, tmp_path, net, domains):
    from doge.tiny import build_tiny_depth

    depth_model = build_tiny_depth(tmp_path / "depth-model")
    out = tmp_path / "multi"
    render(
        out,
        "--gap",
        "real->painting",
        "--control",
        "canny",
        "--control",
        "depth",
        "--depth-model",
        depth_model,
        "--controlnet",
        f"canny={net}",
        "--controlnet",
        f"depth={net}",
        "--controlnet-scale",
        "1.0",
        "--controlnet-scale",
        "0.5",
        "--limit",
        "2",
        "-n",
        "2",
    )
    assert len(list((out / "images").iterdir())) == 4
    assert (
        sorted(p.name.rsplit("_", 1)[1] for p in (out / "controls").iterdir()) == ["canny.png"] * 2 + ["depth.png"] * 2
    )
    assert [c["scale"] for c in lines(out)[0]["controls"]] == [1.0, 0.5]

    maps = tmp_path / "maps"
    maps.mkdir()
    for source in sorted(domains["real"].iterdir()):
        Image.fromarray(np.kron(np.eye(2, dtype=np.uint8) * 200, np.ones((32, 32), np.uint8))).save(
            maps / f"{source.stem}.png"
        )
    render(
        tmp_path / "seg",
        "--gap",
        "real->painting",
        "--control",
        "seg",
        "--control-dir",
        maps,
        "--controlnet",
        net,
        "--limit",
        "2",
    )
    assert len(list((tmp_path / "seg" / "images").iterdir())) == 2


def test_sweep_writes_one_row_per_source_over_edit_weights(render, tmp_path):
    out = tmp_path / "sweep"
    render(out, "--gap", "real->painting", "--control", "none", "--limit", "2", "--sweep", "0:2:3", "--grid")
    names = sorted(p.name for p in (out / "images").iterdir())
    assert len(names) == 6 and {n.rsplit("_w", 1)[1] for n in names} == {"0.png", "1.png", "2.png"}
    assert sorted({e["edit_weight"] for e in lines(out)}) == [0.0, 1.0, 2.0]
    images = pixels(out)
    first = sorted(names)[:3]  # one source, weights 0, 1, 2: same seed, different embedding
    assert not np.array_equal(images[first[0]], images[first[2]])
    grid = Image.open(out / "grid" / "grid_000.png")
    assert grid.width > grid.height  # two rows of source + three outputs


def test_gap_arithmetic_adds_weighted_gaps(render, tmp_path):
    render(tmp_path / "one", "--gap", "real->painting@v1", "--control", "none", "--limit", "2")
    render(
        tmp_path / "halves",
        "--gap",
        "real->painting@v1:0.5",
        "--gap",
        "real->painting@v1:0.5",
        "--control",
        "none",
        "--limit",
        "2",
    )
    render(
        tmp_path / "mix",
        "--gap",
        "real->painting@v1",
        "--gap",
        "real->painting@v2:-1",
        "--control",
        "none",
        "--limit",
        "2",
    )
    one, halves, mix = pixels(tmp_path / "one"), pixels(tmp_path / "halves"), pixels(tmp_path / "mix")
    for name in one:
        np.testing.assert_array_equal(one[name], halves[name])
        assert not np.array_equal(one[name], mix[name])
    assert [g["weight"] for g in lines(tmp_path / "mix")[0]["gaps"]] == [1.0, -1.0]


def test_count_cycles_through_fewer_sources(render, tmp_path):
    out = tmp_path / "count"
    render(out, "--gap", "real->painting", "--control", "none", "--limit", "2", "--count", "5")
    names = sorted(p.name for p in (out / "images").iterdir())
    assert len(names) == 5
    assert sorted(n.rsplit("_", 1)[1] for n in names) == ["0.png", "0.png", "1.png", "1.png", "2.png"]


def test_lora_scale_zero_means_no_lora(render, tmp_path, tiny_model):
    pytest.importorskip("peft")
    from doge.tiny import build_tiny_lora

    lora = build_tiny_lora(tiny_model, tmp_path / "lora")
    common = ["--gap", "real->painting", "--control", "none", "--limit", "1"]
    render(tmp_path / "plain", *common)
    render(tmp_path / "off", *common, "--lora", lora, "--lora-scale", "0")
    render(tmp_path / "on", *common, "--lora", lora, "--lora-scale", "1")
    plain, off, on = pixels(tmp_path / "plain"), pixels(tmp_path / "off"), pixels(tmp_path / "on")
    for name in plain:
        assert np.abs(plain[name].astype(int) - off[name].astype(int)).max() <= 1
        assert not np.array_equal(plain[name], on[name])


def test_python_api_matches_the_cli(home, tiny_model, domains, tmp_path, render):
    import doge

    result = doge.render(
        ["real->painting"],
        domains["real"],
        tmp_path / "api",
        model=str(tiny_model),
        size=64,
        steps=2,
        controls=["none"],
        limit=2,
        home=home,
        progress=False,
    )
    render(tmp_path / "cli", "--gap", "real->painting", "--control", "none", "--limit", "2")
    assert len(result.written) == 2
    api, cli = pixels(tmp_path / "api"), pixels(tmp_path / "cli")
    for name in api:
        np.testing.assert_array_equal(api[name], cli[name])


def make_gap(home, name, dim, plugin="clip"):
    from doge.registry import Registry

    Registry(home=home).create(
        name, np.ones(dim, np.float32), {"encoder": {"plugin": plugin, "model": "m", "dim": dim}}
    )


def test_every_validation_error_is_one_line_before_any_model_loads(render, home, tmp_path, domains, monkeypatch):
    import doge.rendering.loading

    monkeypatch.setattr(doge.rendering.loading, "load_pipeline", lambda *a, **k: pytest.fail("a model was loaded"))
    make_gap(home, "wide->gap", 64)
    make_gap(home, "effnet->gap", 32, plugin="efficientnet")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    (tmp_path / "empty").mkdir()
    cases = [
        (["--gap", "real->paintng"], "real->painting"),
        (["--gap", "wide->gap"], "width 64"),
        (["--gap", "effnet->gap"], "'efficientnet' encoder"),
        (["--gap", "real->painting", "--gap", "wide->gap"], "different encoders"),
        (["--gap", "real->painting:x"], "REF:NUMBER"),
        (["--gap", "real->painting", "--control", "seg"], "--control-dir"),
        (["--gap", "real->painting", "--control", "canny", "--control", "depth", "--controlnet", "x"], "CONTROL=ID"),
        (["--gap", "real->painting", "--control", "blur"], "unknown control"),
        (["--gap", "real->painting", "--controlnet", tmp_path / "no-such-net"], "has no config.json"),
        (["--gap", "real->painting"], "thibaud/controlnet-sd21-canny-diffusers' not found locally"),
        (["--gap", "real->painting", "--sweep", "0:2"], "START:STOP:COUNT"),
        (["--gap", "real->painting", "--size", "60"], "multiple of 8"),
        (["--gap", "real->painting", "--control-start", "0.8", "--control-end", "0.2"], "--control-start"),
    ]
    for args, expected in cases:
        result = render(tmp_path / "out", *args, ok=False)
        assert result.exit_code != 0, args
        out_lines = result.output.strip().splitlines()
        assert len(out_lines) == 1 and expected in out_lines[0], (args, result.output)
    folder_cases = [
        (tmp_path / "missing", tmp_path / "out", "does not exist"),
        (tmp_path / "empty", tmp_path / "out", "no images"),
        (domains["real"], a_file / "out", "cannot write"),
    ]
    for src, out, expected in folder_cases:
        result = render(out, "--gap", "real->painting", ok=False, src=src)
        assert result.exit_code != 0 and expected in result.output, result.output
