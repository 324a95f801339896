"""`doge gap eval` and `doge gap compare`: the measures on known data, then real photos and a real encoder."""

import json
import shutil
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from doge import pluginmanager
from doge.cli.main import get_cli
from doge.data.embeddings import Embeddings
from doge.quality.stability import stability
from doge.quality.transfer import DomainJudge, transfer_curve

# -- the measures, on Gaussian domains whose true gap is known ---------------------------------


def gaussians(n, dim, offset, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)) * scale + offset


@pytest.fixture(scope="module")
def held_out():
    offset = np.zeros(16)
    offset[:4] = 3.0
    return gaussians(30, 16, 0, 1), gaussians(30, 16, offset, 2), offset


def test_the_true_gap_carries_sources_into_the_target_and_a_wrong_one_does_not(held_out):
    src, tgt, gap = held_out
    right = transfer_curve(src, tgt, gap)
    assert right["weights"][0] == 0 and right["accuracy"][0] <= 0.1  # unshifted sources look like sources
    assert right["accuracy"][right["weights"].index(1.0)] >= 0.9
    assert right["accuracy_at_best"] >= 0.9 and 0.75 <= right["best_weight"] <= 1.5
    assert right["domain_accuracy"] >= 0.9
    assert right["centroid_weight"] == pytest.approx(1.0, abs=0.25)
    assert right["centroid_ratio_min"] < 0.4
    wrong = transfer_curve(src, tgt, -gap)
    assert wrong["accuracy_at_best"] <= 0.1
    assert min(wrong["centroid_ratio"]) == 1.0  # every step moves it away


def test_the_best_weight_is_not_the_overshooting_one(held_out):
    src, tgt, gap = held_out
    result = DomainJudge(src, tgt).transfer(gap, weights=[0, 1, 4, 8])
    assert result["accuracy"][-1] == 1.0  # a linear classifier calls anything far enough 'target'
    assert result["centroid_ratio"][-1] > 5
    assert result["best_weight"] == 1.0


def test_stability_is_high_for_a_clear_gap_low_for_noise_and_grows_with_images():
    def emb(x):
        return Embeddings(torch.tensor(x, dtype=torch.float32), [""] * len(x))

    mean = pluginmanager.get("estimators", "mean")
    offset = np.zeros(32)
    offset[0] = 4.0
    src, tgt = emb(gaussians(32, 32, 0, 3)), emb(gaussians(32, 32, offset, 4))
    gap, _ = mean(src, tgt)
    clear = stability(mean, {}, src, tgt, gap, draws=10)
    assert clear["cosine_mean"] > 0.9
    assert [p["images"] for p in clear["curve"]] == [2, 4, 8, 16, 32]
    means = [p["cosine_mean"] for p in clear["curve"]]
    assert means[0] < means[-1] and means == sorted(means)
    assert clear["images_needed"] is not None and clear["images_needed"] <= 32
    noise = emb(gaussians(32, 32, 0, 5))
    noisy_gap, _ = mean(src, noise)
    assert stability(mean, {}, src, noise, noisy_gap, draws=10)["cosine_mean"] < 0.8


# -- real photographs, the real pretrained encoder, through the CLI ------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory, domains):
    """A registry with an efficientnet-lite0 gap made from `domains`, and held-out images of both."""
    from doge.api import create_gap
    from doge.sample_data import write_domains

    root = tmp_path_factory.mktemp("lab")
    held = write_domains(root / "held", count=10, size=64, seed=1)
    create_gap(
        "real->painting",
        domains["real"],
        domains["painting"],
        encoder="efficientnet-lite0",
        home=root / "home",
        progress=False,
        workers=0,
    )
    return {"home": root / "home", "held": held, "root": root}


def run(lab, *args):
    return CliRunner().invoke(get_cli(), ["--home", str(lab["home"]), "--quiet", *map(str, args)])


@pytest.fixture(scope="module")
def evaluated(lab):
    plot = lab["root"] / "eval.png"
    result = run(
        lab,
        "gap",
        "eval",
        "real->painting",
        "--src",
        lab["held"]["real"],
        "--tgt",
        lab["held"]["painting"],
        "--plot",
        plot,
        "--workers",
        "0",
        "--json",
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output), plot


@pytest.mark.slow
def test_eval_on_real_photos_shows_the_gap_transfers(evaluated):
    record, _ = evaluated
    transfer = record["transfer"]
    assert record["encoder"]["plugin"] == "efficientnet-lite0"
    assert record["source"]["images"] == 10 and record["target"]["images"] == 10
    assert record["overlap"] == {"source": 0, "target": 0, "checked": "files"}
    assert transfer["domain_accuracy"] >= 0.75  # the held-out photos and paintings are told apart
    assert transfer["accuracy"][0] <= 0.3  # unshifted photos are not taken for paintings
    assert transfer["accuracy_at_best"] >= 0.8  # shifted by the gap, they are: far above chance
    assert 0 < transfer["centroid_ratio_at_best"] < 1
    stab = record["stability"]
    assert stab["pool"] == "reference" and 0.5 < stab["cosine_mean"] <= 1
    assert [p["images"] for p in stab["curve"]] == [2, 4, 6]
    estimators = record["estimators"]
    names = [r["estimator"] for r in estimators["results"]]
    assert {"mean", "median", "pca", "trimmed-mean", "lda", "coral"} <= set(names)
    assert estimators["best"] in names
    assert "error" in next(r for r in estimators["results"] if r["estimator"] == "class-mean")  # flat folders


@pytest.mark.slow
def test_eval_is_stored_shown_and_compared(lab, evaluated):
    record, _ = evaluated
    shown = json.loads(run(lab, "gap", "show", "real->painting", "--json").output)
    assert len(shown["evaluations"]) == 1
    stored = shown["evaluations"][0]
    assert stored["transfer"] == record["transfer"] and stored["evaluation_id"] == record["evaluation_id"]
    assert "provenance" in shown and shown["ref"] == "real->painting@v1"  # the old keys stay
    text = run(lab, "gap", "show", "real->painting").output
    assert "evaluations: 1; latest:" in text and "best estimator" in text

    from doge.registry import Registry

    reg = Registry(home=lab["home"])
    other = reg.create("real->sketch", np.ones(1280, np.float32), {"estimator": {"name": "mean"}})
    compared = json.loads(run(lab, "gap", "compare", "real->painting", other.ref, "--json").output)
    assert compared[0]["gap"] == "real->painting@v1" and compared[0]["evaluated"]
    assert compared[0]["accuracy_at_best"] == record["transfer"]["accuracy_at_best"]
    assert compared[0]["stability_cosine"] == record["stability"]["cosine_mean"]
    assert compared[1] == {"gap": "real->sketch@v1", "evaluated": False}
    table = run(lab, "gap", "compare", "real->painting", other.ref).output.splitlines()
    assert table[0].split()[:4] == ["REF", "ESTIMATOR", "BEST_W", "ACC"]
    assert table[1].startswith("real->painting@v1") and "not evaluated" in table[2]


@pytest.mark.slow
def test_the_plot_is_a_png_with_three_panels(evaluated):
    _, plot = evaluated
    image = Image.open(plot)
    assert image.format == "PNG" and image.size[0] > 2 * image.size[1]
    pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 10  # drawn on, not blank


@pytest.mark.slow
def test_a_stored_evaluation_keeps_its_plot_on_the_version(evaluated, lab):
    from doge.registry import Registry

    record, plot = evaluated
    reg = Registry(home=lab["home"])
    plots = reg.attachments("real->painting", "plot")
    assert [p["evaluation_id"] for p in plots] == [record["evaluation_id"]]
    _, png = reg.read_attachment("real->painting", plots[0]["id"])
    assert png == plot.read_bytes()


@pytest.mark.slow
def test_without_its_reference_folders_a_gap_is_judged_on_held_out_images_and_overlap_by_digest(lab, domains, tmp_path):
    copies = {k: shutil.copytree(v, tmp_path / k) for k, v in domains.items()}
    made = run(
        lab,
        "gap",
        "create",
        "gone",
        "--src",
        copies["real"],
        "--tgt",
        copies["painting"],
        "--encoder",
        "efficientnet-lite0",
        "--workers",
        "0",
    )
    assert made.exit_code == 0, made.output
    shutil.rmtree(copies["real"])
    # The same photos (same names and bytes) as the deleted reference folder: the set digest matches.
    result = run(
        lab,
        "gap",
        "eval",
        "gone",
        "--src",
        domains["real"],
        "--tgt",
        lab["held"]["painting"],
        "--draws",
        "2",
        "--no-store",
        "--workers",
        "0",
    )
    assert result.exit_code == 0, result.output
    assert "stability (held-out images" in result.output
    assert "estimators: not compared (the gap's reference folders are not here" in result.output
    assert "warning: 6 source and 0 target held-out images were used to make the gap" in result.output
    shown = json.loads(run(lab, "gap", "show", "gone", "--json").output)
    assert shown["evaluations"] == []  # --no-store


def test_overlap_counts_shared_images_by_content():
    from doge.gaps.gap import Gap
    from doge.quality.evaluate import Side, _overlap

    def side(hashes, digest=""):
        return Side(Embeddings(torch.zeros(len(hashes), 2), [""] * len(hashes), digest=digest), set(hashes))

    gap = Gap("g", 1, torch.zeros(2), {"source": {"digest": "d1"}, "target": {"digest": "d2"}}, "sha")
    by_files = _overlap(gap, (side({"a", "b", "c"}), side({"x"})), (side({"b", "c", "z"}), side({"y"})))
    assert by_files == {"source": 2, "target": 0, "checked": "files"}
    by_digest = _overlap(gap, (side({"a", "b"}, "d1"), side({"x"}, "other")), None)
    assert by_digest == {"source": 2, "target": 0, "checked": "set digest"}


def test_plot_needs_matplotlib_and_a_png_name_said_in_one_line(lab, monkeypatch):
    args = ["gap", "eval", "real->painting", "--src", lab["held"]["real"], "--tgt", lab["held"]["painting"]]
    wrong = run(lab, *args, "--plot", lab["root"] / "eval.jpg")
    assert wrong.exit_code != 0 and "name a .png file" in wrong.output
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    missing = run(lab, *args, "--plot", lab["root"] / "x.png")
    assert missing.exit_code != 0
    assert missing.output.strip() == "Error: --plot needs matplotlib: pip install 'doge[plot]'"


def test_eval_names_its_own_flag_for_bad_weights(lab, tmp_path):
    bad = run(lab, "gap", "eval", "real->painting", "--src", tmp_path, "--tgt", tmp_path, "--weights", "abc")
    assert (
        bad.exit_code != 0 and "--weights 'abc': write START:STOP:COUNT" in bad.output and "--sweep" not in bad.output
    )


def test_eval_of_an_unknown_gap_or_folder_is_one_line(lab, tmp_path):
    unknown = run(lab, "gap", "eval", "real->paintng", "--src", tmp_path, "--tgt", tmp_path)
    assert unknown.exit_code != 0 and "did you mean" in unknown.output and len(unknown.output.splitlines()) == 1
    missing = run(lab, "gap", "eval", "real->painting", "--src", tmp_path / "nope", "--tgt", tmp_path)
    assert missing.exit_code != 0 and "does not exist" in missing.output
