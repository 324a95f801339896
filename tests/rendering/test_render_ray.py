"""`doge render --ray`: a local Ray on the CPU, two actors, makes what a local run makes."""

import json
import os
import shutil
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from doge.cli.main import get_cli
from doge.errors import DogeError
from doge.rendering import ray_runner
from doge.rendering.ray_runner import actor_layout

try:
    import ray
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("Ray is not installed: pip install 'doge[ray]'", allow_module_level=True)

from helpers import lines, lines_tolerant, pixels, render_cli

FAST = ["--size", "64", "--steps", "2"]
# Three sources, two images each, batches of four: a batch spans sources.
JOB = ["--gap", "real->painting", "--limit", "3", "-n", "2", "--batch-size", "4"]


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the module (starting one takes seconds): 2 CPUs, as on a small machine."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def home(gap_home):
    """This module's registry (conftest's gap_home) in place of conftest's empty home."""
    return gap_home


@pytest.fixture(scope="module")
def render(ray_session, home, tiny_model, domains, net):
    """``render(out, *args, ok=True)``: the job through the CLI; its ``--ray`` runs join the module's Ray."""

    def invoke(out, *args, ok=True):
        return render_cli(home, tiny_model, domains["real"], out, "--controlnet", net, *JOB, *args, ok=ok)

    return invoke


@pytest.fixture(scope="module")
def runs(render, tmp_path_factory):
    """The job rendered locally, and on Ray with an actor that dies on its first batch."""
    root = tmp_path_factory.mktemp("runs")
    render(root / "local")
    marker = root / "actor-died"
    shipped = ray_runner._RenderActor
    ray_runner._RenderActor = _dies_on_its_first_batch(shipped, str(marker))
    try:
        render(root / "ray", "--ray")
    finally:
        ray_runner._RenderActor = shipped
    return root / "local", root / "ray", marker


def _dies_on_its_first_batch(actor: type, marker: str) -> type:
    """The render actor, except that the first one to find ``marker`` missing creates it and dies
    as a killed actor does: no exception, no cleanup. A local class, so Ray ships it by value."""

    class DiesOnce(actor):
        def __call__(self, batch: dict) -> dict:
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return super().__call__(batch)
            os._exit(1)

    return DiesOnce


def test_two_cpu_actors_on_two_cpus_leave_one_for_reading(ray_session):
    assert actor_layout(ray.cluster_resources()) == (2, {"num_cpus": 0.5})


def test_actor_layout():
    assert actor_layout({"CPU": 16.0, "GPU": 4.0}) == (4, {"num_gpus": 1, "num_cpus": 1.0})
    assert actor_layout({"CPU": 16.0, "GPU": 4.0}, "cpu") == (16, {"num_cpus": 15 / 16})
    assert actor_layout({"CPU": 1.0}) == (1, {"num_cpus": 0.5})
    with pytest.raises(DogeError, match="no GPU"):
        actor_layout({"CPU": 8.0}, "cuda")


@pytest.mark.slow
def test_a_ray_run_makes_a_local_runs_images_even_when_an_actor_dies(runs):
    local, on_ray, marker = runs
    assert marker.exists()  # an actor did die mid-run, and Ray redid its batch
    a, b = pixels(local), pixels(on_ray)
    assert a.keys() == b.keys() and len(a) == 6
    for name in a:
        # Same seeds, same noise; other batches and thread counts may round the last bit differently.
        assert np.abs(a[name].astype(int) - b[name].astype(int)).max() <= 1
    seeds = lambda out: {e["image"]: e["seed"] for e in lines(out)}  # noqa: E731
    assert seeds(local) == seeds(on_ray)
    assert len(lines(on_ray)) == 6  # every image once: one writer, nothing twice
    assert sorted(p.name for p in (local / "controls").iterdir()) == sorted(
        p.name for p in (on_ray / "controls").iterdir()
    )
    first, second = lines(local)[0], {e["image"]: e for e in lines(on_ray)}[lines(local)[0]["image"]]
    assert first == second  # the same manifest line, word for word
    assert not list(on_ray.rglob("*.part"))


@pytest.mark.slow
def test_a_ray_rerun_resumes_from_the_manifest(runs, render, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(runs[1], out)
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()}
    again = json.loads(render(out, "--ray", "--json").stdout)
    assert again["written"] == [] and again["skipped"] == 6
    assert {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()} == stamps

    # A run killed mid-way: one image gone, the manifest's last line torn.
    before = pixels(out)
    text = (out / "manifest.jsonl").read_text().splitlines()
    victim = json.loads(text[-1])["image"].removeprefix("images/")
    (out / "images" / victim).unlink()
    (out / "manifest.jsonl").write_text("\n".join(text[:-1]) + "\n" + text[-1][:30])
    resumed = json.loads(render(out, "--ray", "--json").stdout)
    assert resumed["written"] == [f"images/{victim}"]
    assert np.abs(pixels(out)[victim].astype(int) - before[victim].astype(int)).max() <= 1
    images = [e["image"] for e in lines_tolerant(out)]
    assert len(set(images)) == 6 and images.count(f"images/{victim}") == 1


@pytest.mark.slow
def test_a_users_mistake_found_in_an_actor_is_one_line(render, domains, tmp_path):
    from PIL import Image

    maps = tmp_path / "maps"
    maps.mkdir()
    first = sorted(domains["real"].iterdir())[0]
    Image.new("RGB", (64, 64)).save(maps / f"{first.stem}.png")  # the other sources have no map
    result = render(tmp_path / "out", "--control", "seg", "--control-dir", maps, "--ray", ok=False)
    assert result.exit_code != 0
    lines_out = result.output.strip().splitlines()
    assert len(lines_out) == 1 and lines_out[0].startswith("Error: no control map for "), result.output


def test_without_ray_installed_the_error_says_what_to_install(home, tiny_model, domains, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    argv = [
        "--home",
        str(home),
        "render",
        "--src",
        str(domains["real"]),
        "--out",
        str(tmp_path / "out"),
        "--model",
        str(tiny_model),
        "--control",
        "none",
        "--gap",
        "real->painting",
        "--limit",
        "1",
        *FAST,
        "--ray",
        "auto",
    ]
    result = CliRunner().invoke(get_cli(), argv)
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == ["Error: --ray needs Ray Data: pip install 'doge[ray]'"]
