"""`doge filter`: scores in the manifest, thresholds that reject some and keep others, --delete."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import render_tiny

from doge.cli.main import get_cli
from doge.quality.filtering import verdict


@pytest.fixture(scope="module")
def home(gap_home):
    """This module's registry (conftest's gap_home) in place of conftest's empty home."""
    return gap_home


@pytest.fixture(scope="module")
def rendered_once(home, tiny_model, domains, tmp_path_factory):
    out = tmp_path_factory.mktemp("rendered") / "out"
    render_tiny(["real->painting"], domains["real"], out, tiny_model, per_source=2, home=home)
    return out


@pytest.fixture
def rendered(rendered_once, tmp_path):
    """A fresh copy of a render of 12 images (6 sources x 2) with the tiny model."""
    return Path(shutil.copytree(rendered_once, tmp_path / "out"))


def run(home, *args):
    return CliRunner().invoke(get_cli(), ["--home", str(home), "--quiet", *map(str, args)])


def lines(out):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_scores_every_image_and_keeps_the_rest_of_each_line(home, rendered):
    before = lines(rendered)
    result = run(home, "filter", rendered, "--min-target-score", "0", "--json", "--workers", "0")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["gap"] == "real->painting@v1"  # the one the images were rendered with
    assert summary["scored"] == summary["kept"] == len(before) == 12 and summary["rejected"] == 0
    after = lines(rendered)
    assert [{k: v for k, v in line.items() if k != "filter"} for line in after] == before
    for line in after:
        f = line["filter"]
        assert 0 <= f["target_score"] <= 1 and -1 <= f["source_similarity"] <= 1
        assert f == {**f, "rejected": False, "reasons": [], "gap": "real->painting@v1"}


def test_thresholds_reject_exactly_the_images_below_them(home, rendered):
    run(home, "filter", rendered, "--min-target-score", "0", "--workers", "0")
    scores = {line["image"]: line["filter"]["target_score"] for line in lines(rendered)}
    similarities = {line["image"]: line["filter"]["source_similarity"] for line in lines(rendered)}
    target_cut = sorted(scores.values())[len(scores) // 2]
    similarity_cut = sorted(similarities.values())[2]
    result = run(
        home,
        "filter",
        rendered,
        "--min-target-score",
        target_cut,
        "--min-source-similarity",
        similarity_cut,
        "--json",
        "--workers",
        "0",
    )
    assert result.exit_code == 0, result.output
    expected = {i for i in scores if scores[i] < target_cut or similarities[i] < similarity_cut}
    assert 0 < len(expected) < len(scores)  # some rejected, some kept
    summary = json.loads(result.output)
    assert set(summary["rejected_images"]) == expected and summary["kept"] == len(scores) - len(expected)
    for line in lines(rendered):
        f = line["filter"]
        assert f["rejected"] == (line["image"] in expected)
        assert ("target score" in " ".join(f["reasons"])) == (scores[line["image"]] < target_cut)
        assert ("source similarity" in " ".join(f["reasons"])) == (similarities[line["image"]] < similarity_cut)
    assert all((rendered / image).exists() for image in scores)  # nothing deleted without --delete


def test_delete_removes_only_rejected_files_and_says_how_many(home, rendered):
    run(home, "filter", rendered, "--min-target-score", "0", "--workers", "0")
    scores = {line["image"]: line["filter"]["target_score"] for line in lines(rendered)}
    cut = sorted(scores.values())[3]
    result = run(home, "filter", rendered, "--min-target-score", cut, "--delete", "--workers", "0")
    assert result.exit_code == 0, result.output
    gone = {i for i, s in scores.items() if s < cut}
    assert f"rejected {len(gone)}, deleted {len(gone)} files" in result.output
    assert {i for i in scores if not (rendered / i).exists()} == gone
    assert len(lines(rendered)) == len(scores)  # the lines stay, marked
    assert all(line["filter"].get("deleted") for line in lines(rendered) if line["image"] in gone)


def test_a_rerun_of_the_render_does_not_make_deleted_images_again(home, rendered, tiny_model, domains):
    run(home, "filter", rendered, "--min-target-score", "0", "--workers", "0")
    cut = sorted(line["filter"]["target_score"] for line in lines(rendered))[3]
    run(home, "filter", rendered, "--min-target-score", cut, "--delete", "--workers", "0")
    gone = {line["image"] for line in lines(rendered) if line["filter"].get("deleted")}
    assert gone
    again = render_tiny(["real->painting"], domains["real"], rendered, tiny_model, per_source=2, home=home, grid=True)
    assert again.written == [] and not any((rendered / image).exists() for image in gone)
    assert len(again.grids) == 1  # the contact sheet shows what is left


def test_mistakes_get_one_line(home, rendered, tmp_path):
    empty = run(home, "filter", tmp_path / "nothing-here")
    assert empty.exit_code != 0 and "no manifest.jsonl" in empty.output and len(empty.output.splitlines()) == 1
    half = run(home, "filter", rendered, "--src", tmp_path)
    assert half.exit_code != 0 and "give both --src and --tgt" in half.output
    unknown = run(home, "filter", rendered, "--gap", "nope")
    assert unknown.exit_code != 0 and "no gap named 'nope'" in unknown.output


def test_filter_refuses_a_folder_another_command_is_writing(home, rendered):
    import subprocess
    import sys

    from helpers import write_lock

    before = (rendered / "manifest.jsonl").read_bytes()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_lock(rendered, pid=holder.pid)
        result = run(home, "filter", rendered)
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert f"in use by doge render (pid {holder.pid} on this host" in result.output
    assert (rendered / "manifest.jsonl").read_bytes() == before


@pytest.mark.parametrize("hostile", ["http://127.0.0.1:9/x.png", "s3://bucket/x.png", "outside", "climb"])
def test_a_manifest_source_outside_the_source_folder_is_refused_naming_its_line(home, rendered, tmp_path, hostile):
    outside = tmp_path / "secret.png"
    shutil.copy(sorted((rendered).glob("**/*.png"))[0], outside)
    kept = lines(rendered)
    first = kept[0]
    real = Path(first["source"])
    first["source"] = {"outside": str(outside), "climb": f"{real.parent}/../../{outside.parent.name}/secret.png"}.get(
        hostile, hostile
    )
    (rendered / "manifest.jsonl").write_text("".join(json.dumps(line) + "\n" for line in kept))
    result = run(home, "filter", rendered, "--min-target-score", "0", "--workers", "0")
    assert result.exit_code != 0
    assert first["image"] in result.output and "--src" in result.output
    assert "Traceback" not in result.output


def test_filter_rejects_an_undefined_source_similarity_and_records_null():
    record = verdict(0.9, float("nan"), 0.5, 0.8)
    assert record["rejected"] and record["source_similarity"] is None
    assert record["reasons"] == ["source similarity undefined (a zero embedding)"]
    json.dumps(record, allow_nan=False)  # the manifest stays valid JSON
    kept = verdict(0.9, float("nan"), 0.5, None)  # no minimum asked for: nothing to fail
    assert not kept["rejected"] and kept["source_similarity"] is None
    assert verdict(0.9, 0.79, 0.5, 0.8)["reasons"] == ["source similarity 0.790 < 0.8"]
