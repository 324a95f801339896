"""`doge render` end to end on the tiny model: outputs, manifest, seeds, resume, controls, errors."""

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import lines, lines_tolerant, pixels, render_cli, render_tiny
from PIL import Image

# real->painting@v1 (mean) and @v2 (median)
GAP_ESTIMATORS = ("mean", "median")


@pytest.fixture(scope="module")
def home(gap_home):
    """This module's registry (conftest's gap_home) in place of conftest's empty home."""
    return gap_home


@pytest.fixture
def render(home, tiny_model, domains):
    def invoke(out, *args, ok=True, src=None):
        return render_cli(home, tiny_model, src or domains["real"], out, *args, ok=ok)

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
    from doge.testing import build_tiny_depth

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
    from doge.testing import build_tiny_lora

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
    result = render_tiny(["real->painting"], domains["real"], tmp_path / "api", tiny_model, limit=2, home=home)
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


def test_render_on_a_loaded_stock_pipeline_reuses_its_modules(home, tiny_model, domains, tmp_path, net, monkeypatch):
    from diffusers import StableUnCLIPImg2ImgPipeline

    import doge
    import doge.rendering.loading

    options = dict(size=64, steps=2, controlnets=[str(net)], limit=1, home=home, progress=False)
    expected = doge.render(["real->painting"], domains["real"], tmp_path / "loaded", model=str(tiny_model), **options)

    stock = StableUnCLIPImg2ImgPipeline.from_pretrained(tiny_model)
    monkeypatch.setattr(doge.rendering.loading, "load_pipeline", lambda *a, **k: pytest.fail("the model was loaded"))
    seen = []
    hook = stock.unet.register_forward_pre_hook(lambda module, args: seen.append(1))
    try:
        result = doge.render(["real->painting"], domains["real"], tmp_path / "given", pipeline=stock, **options)
    finally:
        hook.remove()
    assert seen, "the stock pipeline's UNet did not render"
    assert result.written == expected.written
    given, loaded = pixels(tmp_path / "given"), pixels(tmp_path / "loaded")
    for name in loaded:
        np.testing.assert_array_equal(given[name], loaded[name])
    assert lines(tmp_path / "given")[0]["model"] == str(tiny_model)
    assert not hasattr(stock, "controlnet")  # the user's pipeline is left as it was


def test_render_refuses_a_pipeline_of_another_width(home, tiny_model, domains, tmp_path):
    from diffusers import StableUnCLIPImg2ImgPipeline

    import doge

    make_gap(home, "wide->pipe", 64)
    # a model whose config says width 64 passes the plan's check; the pipeline's own encoder (32) does not
    wide = tmp_path / "wide-model" / "image_encoder"
    wide.mkdir(parents=True)
    (wide / "config.json").write_text(json.dumps({"projection_dim": 64}))
    stock = StableUnCLIPImg2ImgPipeline.from_pretrained(tiny_model)
    common = dict(size=64, steps=2, controls=["none"], home=home, progress=False)
    with pytest.raises(doge.DogeError) as caught:
        doge.render(["wide->pipe"], domains["real"], tmp_path / "out", pipeline=stock, model=str(wide.parent), **common)
    assert str(caught.value) == (
        "the pipeline's image encoder has width 32 but the gap has width 64; "
        "pass the pipeline of the unCLIP model the gap was made with, or recreate the gap with --model"
    )
    assert not (tmp_path / "out" / "images").exists()
    with pytest.raises(doge.DogeError, match="StableUnCLIPImg2ImgPipeline"):
        doge.render(["real->painting"], domains["real"], tmp_path / "out", pipeline=object(), home=home)
    with pytest.raises(doge.DogeError, match="ray="):
        doge.render(["real->painting"], domains["real"], tmp_path / "out", pipeline=stock, ray="local", home=home)


# -- one writer at a time in an output folder ----------------------------------------------


def _render_at_once(home, tiny_model, domains, out, seeds) -> list:
    """One thread per seed: each plans a render into ``out``, then all start it together."""
    import threading

    from doge.rendering.batch import load_engine
    from doge.rendering.plan import plan
    from doge.rendering.run import run_plan

    plans = [
        plan(
            ["real->painting"],
            domains["real"],
            out,
            model=str(tiny_model),
            size=64,
            steps=2,
            controls=["none"],
            limit=2,
            per_source=2,
            seed=seed,
            home=home,
        )
        for seed in seeds
    ]
    assert all(len(p.pending) == 4 for p in plans)  # each saw an empty folder
    engines = [load_engine(p) for p in plans]  # loaded one after the other: loading is not thread-safe
    barrier, outcomes = threading.Barrier(len(plans)), [None] * len(plans)

    def go(i):
        barrier.wait()
        try:
            outcomes[i] = run_plan(plans[i], progress=False, engine=engines[i])
        except Exception as e:  # the refusal, kept for the test to read
            outcomes[i] = e

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(plans))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


@pytest.mark.parametrize("seeds", [(42, 42), (1, 2)], ids=["same-settings", "other-seed"])
def test_two_renders_into_one_folder_at_once_leave_one_manifest_and_a_refusal(
    home, tiny_model, domains, tmp_path, render, seeds
):
    from doge.errors import DogeError
    from doge.locks import LOCK_NAME

    out = tmp_path / "out"
    outcomes = _render_at_once(home, tiny_model, domains, out, seeds)
    won = [o for o in outcomes if not isinstance(o, Exception)]
    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert len(won) == 1 and len(refused) == 1, outcomes
    assert isinstance(refused[0], DogeError) and "in use by doge render" in str(refused[0])
    entries = lines(out)
    assert len(entries) == 4 == len({e["image"] for e in entries})  # one line an image
    assert {e["run"] for e in entries} == {entries[0]["run"]}
    assert sorted(f"images/{name}" for name in pixels(out)) == sorted(e["image"] for e in entries)
    assert not (out / LOCK_NAME).exists()
    # the folder can still be resumed by the render that made it
    winner = entries[0]["run_seed"]
    again = render(out, "--gap", "real->painting", "--control", "none", "--limit", "2", "-n", "2", "--seed", winner)
    assert "wrote 0 images" in again.output and "(4 already there)" in again.output


def test_a_render_into_a_locked_folder_is_one_line_and_a_stale_lock_is_taken_over(render, tmp_path):
    import subprocess
    import sys

    from helpers import dead_pid, write_lock

    out = tmp_path / "out"
    args = ["--gap", "real->painting", "--control", "none", "--limit", "1"]
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = write_lock(out, pid=holder.pid)
        refused = render(out, *args, ok=False)
    finally:
        holder.kill()
        holder.wait()
    assert refused.exit_code == 1
    assert refused.output.strip().splitlines() == [refused.output.strip()]
    assert f"in use by doge render (pid {holder.pid} on this host" in refused.output
    assert not (out / "manifest.jsonl").exists() and not (out / "images").exists()

    lock.unlink()
    write_lock(out, pid=dead_pid())  # a render killed with kill -9 left this
    render(out, *args)
    assert len(lines(out)) == 1 and not lock.exists()
