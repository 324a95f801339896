"""`doge render` on a hostile output folder or a disk that fills up: one line, no image without its
manifest line, and the same command resumes once there is room."""

import errno
import json
import os

import pytest
from helpers import render_cli


@pytest.fixture(scope="module")
def home(gap_home):
    """conftest's registry holding real->painting@v1, shared by this module's tests."""
    return gap_home


def render(home, tiny_model, domains, out, *args):
    return render_cli(
        home, tiny_model, domains["real"], out, "--gap", "real->painting", "--control", "none", *args, ok=False
    )


def one_line(result) -> str:
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


@pytest.mark.parametrize("blocker", ["images", "controls", "manifest.jsonl"])
def test_a_file_or_folder_in_the_way_is_refused_before_any_model_loads(
    home, tiny_model, domains, tmp_path, monkeypatch, blocker
):
    def no_model(*args, **kwargs):
        pytest.fail("the model loaded before the output folder was checked")

    monkeypatch.setattr("doge.rendering.loading.load_pipeline", no_model)
    out = tmp_path / "out"
    out.mkdir()
    if blocker == "manifest.jsonl":
        (out / blocker).mkdir()
    else:
        (out / blocker).write_text("in the way")
    line = one_line(render(home, tiny_model, domains, out, "--limit", "1"))
    assert str(out / blocker) in line and "move it away" in line


def test_a_full_disk_leaves_no_image_without_its_line_and_the_run_resumes(
    home, tiny_model, domains, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    real_fsync, calls = os.fsync, []

    def filling_fsync(fd):
        calls.append(fd)
        if len(calls) > 4:  # a few files fit, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr("doge.atomic.os.fsync", filling_fsync)
    monkeypatch.setattr("doge.rendering.manifest.os.fsync", filling_fsync)
    line = one_line(render(home, tiny_model, domains, out, "--limit", "3", "-n", "2", "--batch-size", "2"))
    assert "No space left" in line and "free some space" in line and str(out) in line
    listed = (
        {json.loads(x)["image"] for x in (out / "manifest.jsonl").read_text().splitlines()}
        if (out / "manifest.jsonl").exists()
        else set()
    )
    on_disk = {f"images/{p.name}" for p in (out / "images").iterdir()}
    assert on_disk == listed  # every image has its line, no line lacks its image, no temp file
    assert len(listed) < 6

    monkeypatch.undo()
    result = render(home, tiny_model, domains, out, "--limit", "3", "-n", "2", "--batch-size", "2")
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(lines) == len({x["image"] for x in lines}) == 6
    assert {f"images/{p.name}" for p in (out / "images").iterdir()} == {x["image"] for x in lines}
