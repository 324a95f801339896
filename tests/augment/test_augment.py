"""`doge augment` on the tiny model: every input layout and output format, read back by the loaders
a trainer uses (datasets, pycocotools, webdataset), budgets, resume after a kill, filter refill, dry run."""

import functools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import augment_tiny, coco_mask, write_class_folders, write_coco
from PIL import Image

from doge.cli.main import get_cli

GAP_ESTIMATORS = ("mean", "median")  # conftest's gap_home makes one version each


@pytest.fixture(scope="module")
def home(gap_home):
    """This module's registry (conftest's gap_home): real->painting@v1 (mean) and @v2 (median)."""
    return gap_home


@pytest.fixture(scope="module")
def class_folders(tmp_path_factory, domains):
    """Two classes of unequal size: cat (2 images), dog (4 images)."""
    return write_class_folders(tmp_path_factory.mktemp("set") / "train", domains)


@pytest.fixture
def run(home, tiny_model):
    """``run(src, out, gaps=..., **options)``: doge.augment with the tiny model in this module's home."""
    return functools.partial(augment_tiny, tiny_model=tiny_model, home=home)


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]


def test_class_folders_to_imagefolder_loaded_by_datasets(run, class_folders, tmp_path):
    import datasets

    out = tmp_path / "aug"
    summary = run(class_folders, out, gaps=["real->painting@v1", "real->painting@v2"], per_class=3, weights="1.0,2.0")
    ds = datasets.load_dataset("imagefolder", data_dir=str(out), split="train")
    assert len(ds) == 6
    by_label = {}
    for row in ds:
        # The label is the source's class: the source sits in that class's folder.
        assert Path(row["doge_source"]).parent.name == row["label"]
        assert row["image"].size == (64, 64)
        by_label[row["label"]] = by_label.get(row["label"], 0) + 1
    assert by_label == {"cat": 3, "dog": 3}
    # The cat class has 2 sources: the third image cycles back to the first source with k = 1.
    cat = sorted(r["file_name"] for r in rows(out) if r["label"] == "cat")
    assert cat == ["cat/astronaut_0000_0.png", "cat/astronaut_0000_1.png", "cat/chelsea_0002_0.png"]
    # The budget is split between the gaps and spread over the weights; each image records its own.
    assert summary["per_gap"] == {"real->painting@v1": 3, "real->painting@v2": 3}
    assert sorted({(r["doge_gaps"], r["doge_edit_weight"]) for r in rows(out)}) == [
        ("real->painting@v1:1", 1.0),
        ("real->painting@v1:1", 2.0),
        ("real->painting@v2:1", 1.0),
        ("real->painting@v2:1", 2.0),
    ]
    for r in rows(out):
        assert len(r["doge_source_sha256"]) == 64 and len(r["doge_gap_sha256"]) == 64 and r["doge_seed"] >= 0
    # OUT holds only the dataset (class folders, metadata, card, the run's summary and a contact sheet
    # per class as top-level files no loader reads): the render work area is beside it.
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["cat", "dog"]
    files = sorted(p.name for p in out.iterdir() if p.is_file())
    assert [f for f in files if not f.startswith("contact-sheet-")] == ["README.md", "doge-run.json", "metadata.jsonl"]
    assert len([f for f in files if f.startswith("contact-sheet-cat-")]) == 1
    card = (out / "README.md").read_text()
    import yaml

    header = yaml.safe_load(card.split("---")[1])
    assert header["doge"]["classes"] == ["cat", "dog"] and header["task_categories"] == ["image-classification"]
    assert "tiny random test model" in card and header["doge"]["gaps"][0]["sha256"] in card
    assert "| cat | 2 | 3 | 3 | 0 | 0 | 0 |" in card
    assert "## Contact sheets" in card and "contact-sheet-dog-" in card


def test_dry_run_plans_without_a_model(home, class_folders, tmp_path):
    out = tmp_path / "aug"
    argv = ["--home", str(home), "augment", str(class_folders), "--gap", "real->painting", "--out", str(out)]
    result = CliRunner().invoke(get_cli(), [*argv, "--balance", "--dry-run", "--json", "--model", "no/such-model"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    # --balance fills every class up to the largest one (dog has 4, cat 2).
    assert plan["per_class"] == {"cat": {"sources": 2, "asked": 2}, "dog": {"sources": 4, "asked": 0}}
    assert plan["planned"] == 2 and not out.exists()
    result = CliRunner().invoke(get_cli(), [*argv, "--ratio", "1.5", "--gap", "real->painting@v1", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "9 images planned" in result.output  # round(1.5 * 2) + round(1.5 * 4)
    assert "gap real->painting: 5 images" in result.output and "gap real->painting@v1: 4 images" in result.output
    result = CliRunner().invoke(get_cli(), [*argv, "--per-class", "2", "--count", "3", "--dry-run"])
    assert result.exit_code != 0 and "exactly one budget" in result.output and "Traceback" not in result.output


def test_the_python_api_takes_values_and_keywords_alike(home, class_folders, tmp_path):
    import doge
    from doge.augmentation.options import Budget, DatasetInput, Layout

    with_values = doge.augment(
        class_folders,
        ["real->painting"],
        tmp_path / "a",
        reading=DatasetInput(label_column="label"),
        budget=Budget(ratio=1.5),
        layout=Layout(output_format="coco"),
        runtime=doge.Runtime(home=home),
        dry_run=True,
    )
    with_keywords = doge.augment(
        class_folders, ["real->painting"], tmp_path / "a", ratio=1.5, output_format="coco", home=home, dry_run=True
    )
    assert with_values == with_keywords and with_values["planned"] == 9 and with_values["format"] == "coco"
    # a keyword replaces that field of a value given beside it
    per_class = doge.augment(
        class_folders,
        ["real->painting"],
        tmp_path / "a",
        budget=Budget(per_class=1),
        per_class=2,
        home=home,
        dry_run=True,
    )
    assert per_class["planned"] == 4
    with pytest.raises(doge.DogeError, match=r"augment\(\) got unknown option\(s\) per_clas"):
        doge.augment(class_folders, ["real->painting"], tmp_path / "a", per_clas=2, home=home, dry_run=True)


def test_rerun_after_a_kill_makes_only_what_is_missing(run, class_folders, tmp_path, monkeypatch):
    from doge.rendering import batch

    clean = tmp_path / "clean"
    run(class_folders, clean, count=4, batch_size=1)
    calls = {"n": 0}
    real_write = batch.OutputWriter.write

    def dying_write(self, outputs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the process is killed mid-run
        real_write(self, outputs)

    out = tmp_path / "aug"
    monkeypatch.setattr(batch.OutputWriter, "write", dying_write)
    with pytest.raises(KeyboardInterrupt):
        run(class_folders, out, count=4, batch_size=1)
    monkeypatch.setattr(batch.OutputWriter, "write", real_write)
    summary = run(class_folders, out, count=4, batch_size=1)
    assert 0 < summary["skipped"] < 4 and summary["written"] + summary["skipped"] == 4
    # Same images as an uninterrupted run, byte for byte: seeds are per image.
    assert [r["file_name"] for r in rows(out)] == [r["file_name"] for r in rows(clean)]
    for r in rows(out):
        assert (out / r["file_name"]).read_bytes() == (clean / r["file_name"]).read_bytes()
    again = run(class_folders, out, count=4, batch_size=1)
    assert again["written"] == 0 and again["skipped"] == 4


def test_imagefolder_metadata_csv_input_with_label_column_and_sources(run, domains, tmp_path):
    src = tmp_path / "hf"
    src.mkdir()
    files = sorted(domains["real"].iterdir())[:3]
    lines = ["file_name,species"]
    for i, f in enumerate(files):
        shutil.copy(f, src / f.name)
        lines.append(f"{f.name},{'ab'[i % 2]}")
    (src / "metadata.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "aug"
    summary = run(src, out, ratio=1, label_column="species", with_sources="copy")
    assert summary["input"] == "imagefolder"
    got = rows(out)
    assert len(got) == 6 and sum(r["doge_generated"] for r in got) == 3
    labels = {f.name: "ab"[i % 2] for i, f in enumerate(files)}
    for r in got:
        assert r["species"] == labels[Path(r["doge_source"]).name]
        assert r["file_name"].startswith(r["species"] + "/") and (out / r["file_name"]).is_file()


@pytest.fixture
def coco_set(domains, tmp_path):
    """Two 96 x 64 images with a box, a polygon and an RLE mask each (output 64 x 64: x scales by 2/3)."""
    return write_coco(tmp_path / "coco", domains), coco_mask()


# A 96 x 64 source at --size 64: keep keeps its 3:2 aspect on the 64 x 64 output, scaled by 2/3 to
# 64 x 43 and letterboxed (10 px above, 11 below: y' = y * 43/64 + 10); crop cuts x 16..80 at scale 1.
KEEP_Y = 43 / 64
EXPECTED = {
    "keep": {
        "box": [8, 6 * KEEP_Y + 10, 20, 20 * KEEP_Y],
        "poly": [0, 30 * KEEP_Y + 10, 32, 30 * KEEP_Y + 10, 32, 60 * KEEP_Y + 10, 0, 60 * KEEP_Y + 10],
        "cols": None,
    },
    "crop": {"box": [0, 6, 26, 20], "poly": [0, 30, 32, 30, 32, 60, 0, 60], "cols": (16, 80)},
}


@pytest.mark.parametrize("fit", ["keep", "crop"])
def test_coco_boxes_polygons_and_rle_follow_the_geometry(run, coco_set, tmp_path, fit):
    from pycocotools import mask as mu
    from pycocotools.coco import COCO

    root, source_mask = coco_set
    out = tmp_path / "aug"
    summary = run(root, out, annotations=root / "instances.json", output_format="coco", ratio=1, fit=fit)
    assert summary["input"] == "coco" and summary["generated"] == 2
    coco = COCO(str(out / "annotations.json"))
    assert len(coco.getImgIds()) == 2 and len(coco.getAnnIds()) == 6
    assert {c["name"] for c in coco.loadCats(coco.getCatIds())} == {"car", "road"}
    expected = EXPECTED[fit]
    if expected["cols"]:
        want = source_mask[:, slice(*expected["cols"])].astype(np.uint8)
    else:
        want = np.zeros((64, 64), dtype=np.uint8)
        want[10:53] = np.asarray(
            Image.fromarray(source_mask.astype(np.uint8)).resize((64, 43), Image.Resampling.NEAREST)
        )
    for image in coco.loadImgs(coco.getImgIds()):
        assert (image["width"], image["height"]) == Image.open(out / image["file_name"]).size == (64, 64)
        anns = {
            a["category_id"] if a["category_id"] == 1 else a["iscrowd"] + 2: a
            for a in coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
        }
        box = anns[1]
        assert box["bbox"] == pytest.approx(expected["box"], abs=0.01)
        assert box["area"] == pytest.approx(expected["box"][2] * expected["box"][3])
        poly = anns[2]
        assert poly["segmentation"] == [pytest.approx(expected["poly"], abs=0.01)]
        poly_w, poly_h = expected["poly"][2] - expected["poly"][0], expected["poly"][5] - expected["poly"][1]
        assert poly["area"] == pytest.approx(poly_w * poly_h, rel=0.1)
        rle = anns[3]
        got = coco.annToMask(rle)
        assert np.array_equal(got, want) and rle["area"] == pytest.approx(float(want.sum()))
        assert mu.area(coco.annToRLE(rle)) == want.sum()


def test_masks_resized_nearest_and_webdataset_read_back(run, domains, tmp_path):
    import webdataset as wds

    src, masks = tmp_path / "seg" / "images", tmp_path / "seg" / "labels"
    src.mkdir(parents=True)
    masks.mkdir()
    rng = np.random.default_rng(0)
    for f in sorted(domains["real"].iterdir())[:2]:
        Image.open(f).convert("RGB").resize((80, 48)).save(src / f.name)
        Image.fromarray(rng.choice([0, 7, 19], size=(48, 80)).astype(np.uint8)).save(masks / f.name)
    out = tmp_path / "aug"
    run(src, out, masks=masks, per_class=3)
    for r in rows(out):
        got = np.asarray(Image.open(out / "masks" / r["file_name"]))
        source = Image.open(masks / Path(r["doge_source"]).name)
        # keep: the 80 x 48 (5:3) mask on a 128 x 64 output (the 64-multiple size closest to 5:3 at
        # --size 64), scaled by 4/3 to 107 x 64 and letterboxed 10 px left and 11 right.
        assert got.shape == (64, 128) and set(np.unique(got)) <= {0, 7, 19}
        assert not got[:, :10].any() and not got[:, 117:].any()
        assert np.array_equal(got[:, 10:117], np.asarray(source.resize((107, 64), Image.Resampling.NEAREST)))

    shards = tmp_path / "shards"
    run(src, shards, masks=masks, per_class=3, output_format="webdataset", shard_size=1, with_sources="link")
    samples = list(wds.WebDataset(sorted(str(p) for p in shards.glob("shard-*.tar")), shardshuffle=False))
    assert len(samples) == 5 and len(list(shards.glob("shard-*.tar"))) == 5
    assert all(int(s["cls"]) == 0 and json.loads(s["json"])["label"] == "" for s in samples)
    assert sum(json.loads(s["json"])["doge_generated"] for s in samples) == 3


def test_the_filter_encodes_as_doge_filter_does_whatever_the_renders_batch(run, class_folders, tmp_path, monkeypatch):
    import doge.data.encoding as encoding

    calls = []
    encode = encoding.encode_images

    def recording(encoder, imageset, batch_size=32, workers=None, progress=True, desc="", ray=None):
        calls.append((desc, batch_size, ray))
        return encode(encoder, imageset, batch_size, workers, progress, desc, ray)

    monkeypatch.setattr(encoding, "encode_images", recording)
    run(class_folders, tmp_path / "aug", per_class=1, filter=True, min_target_score=0.0, batch_size=2, workers=0)
    # --batch-size is the renders'; the filter's encoder takes 32 images a call, here, as doge filter does
    assert calls and {(batch, ray) for _, batch, ray in calls} == {(32, None)}
    assert {desc for desc, _, _ in calls} >= {"reference source", "reference target", "generated"}


def test_filter_replaces_rejected_images_with_the_next_k(run, class_folders, tmp_path):
    work = tmp_path / "work"  # one render work area: the runs differ only in the filter's verdicts
    out = tmp_path / "keep-all"
    run(class_folders, out, per_class=2, filter=True, min_target_score=0.0, work=work)
    scores = sorted(r["doge_target_score"] for r in rows(out))
    assert len(scores) == 4 and all(s is not None for s in scores)
    threshold = (scores[1] + scores[2]) / 2  # two of the four first samples miss it

    out = tmp_path / "strict"
    summary = run(class_folders, out, per_class=2, filter=True, min_target_score=threshold, max_tries=3, work=work)
    got = rows(out)
    assert all(r["doge_target_score"] >= threshold for r in got)
    rejected = sum(c["rejected"] for c in summary["classes"].values())
    assert rejected >= 2 and any(r["doge_k"] >= 1 and r["label"] == "dog" for r in got)
    for label, c in summary["classes"].items():
        assert c["made"] + c["short"] == 2 and sum(r["label"] == label for r in got) == c["made"]

    out = tmp_path / "none"
    summary = run(class_folders, out, per_class=1, filter=True, min_target_score=1.01, max_tries=2, work=work)
    assert {c["short"] for c in summary["classes"].values()} == {1} and not rows(out)
    assert {c["rejected"] for c in summary["classes"].values()} == {2}  # two tries each, both rejected


def test_a_users_mistakes_get_one_line(home, class_folders, domains, tmp_path):
    def fails(*args):
        argv = ["--home", str(home), "augment", *map(str, args), "--gap", "real->painting", "--dry-run"]
        result = CliRunner().invoke(get_cli(), [*argv, "--out", str(tmp_path / "out")])
        assert result.exit_code != 0 and "Traceback" not in result.output
        return result.output

    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no images found" in fails(empty, "--count", "2")
    hf = tmp_path / "hf"
    hf.mkdir()
    shutil.copy(sorted(domains["real"].iterdir())[0], hf / "a.png")
    (hf / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "species": "cat"}) + "\n")
    assert "--label-column" in fails(hf, "--count", "2")
    masks = tmp_path / "masks"
    masks.mkdir()
    assert "no label image" in fails(class_folders, "--masks", masks, "--count", "2")
    assert "COCO JSON" in fails(hf, "--annotations", hf / "metadata.jsonl", "--count", "2")
    assert "--weights" in fails(class_folders, "--count", "2", "--weights", "1,x")


def test_cli_json_is_what_python_returns_and_masks_feed_the_seg_control(home, tiny_model, domains, tmp_path):
    import doge

    src, masks = tmp_path / "seg" / "images", tmp_path / "seg" / "labels"
    src.mkdir(parents=True)
    masks.mkdir()
    for i, f in enumerate(sorted(domains["real"].iterdir())[:2]):
        shutil.copy(f, src / f.name)
        Image.fromarray(np.full((64, 64), 5 * (i + 1), np.uint8)).save(masks / f.name)
    out = tmp_path / "aug"
    options = ["--steps", "2", "--size", "64", "--control", "seg", "--controlnet", str(tiny_model / "controlnet")]
    argv = ["--home", str(home), "--quiet", "augment", str(src), "--gap", "real->painting", "--out", str(out)]
    result = CliRunner().invoke(
        get_cli(), [*argv, "--masks", str(masks), "--count", "2", "--model", str(tiny_model), *options, "--json"]
    )
    assert result.exit_code == 0, result.output
    from_cli = json.loads(result.output)
    assert from_cli["written"] == 2 and from_cli["masks"] is True
    # The label images are the seg control's maps (one per source, matched by stem).
    assert from_cli["render"]["controls"][0]["control_dir"] == str(masks)
    again = doge.augment(
        src,
        ["real->painting"],
        out,
        masks=masks,
        count=2,
        model=str(tiny_model),
        home=home,
        steps=2,
        size=64,
        controls=["seg"],
        controlnets=[str(tiny_model / "controlnet")],
        progress=False,
    )
    assert again["written"] == 0 and again["skipped"] == 2
    assert {k: v for k, v in again.items() if k not in ("written", "skipped")} == {
        k: v for k, v in from_cli.items() if k not in ("written", "skipped")
    }


def test_an_augment_holds_its_output_folder_and_a_second_writer_is_refused(home, tiny_model, class_folders, tmp_path):
    import os

    from helpers import write_lock

    out = tmp_path / "aug"
    write_lock(out, pid=os.getppid(), command="augment")  # a live process on this host holds OUT
    argv = ["--home", str(home), "--quiet", "augment", str(class_folders), "--gap", "real->painting"]
    argv += ["--out", str(out), "--count", "2", "--model", str(tiny_model), "--steps", "2", "--size", "64"]
    result = CliRunner().invoke(get_cli(), [*argv, "--control", "none"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.count("\n") == 1 and "in use by doge augment" in result.output, result.output
    assert sorted(p.name for p in out.iterdir()) == [".doge.lock"]  # nothing was written


def test_seg_labels_turn_cityscapes_masks_into_ade20k_colours(home, tiny_model, domains, tmp_path):
    src, masks = tmp_path / "city" / "images", tmp_path / "city" / "labels"
    src.mkdir(parents=True)
    masks.mkdir()
    image = sorted(domains["real"].iterdir())[0]
    shutil.copy(image, src / image.name)
    Image.fromarray(np.full((64, 64), 7, np.uint8)).save(masks / image.name)  # Cityscapes label ID 7: road
    work = tmp_path / "work"
    argv = ["--home", str(home), "--quiet", "augment", str(src), "--gap", "real->painting", "--out"]
    argv += [str(tmp_path / "aug"), "--masks", str(masks), "--count", "1", "--model", str(tiny_model), "--json"]
    argv += ["--steps", "2", "--size", "64", "--control", "seg", "--controlnet", str(tiny_model / "controlnet")]
    result = CliRunner().invoke(get_cli(), [*argv, "--seg-labels", "cityscapes", "--work", str(work)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["render"]["controls"][0]["options"]["labels"] == "cityscapes"
    (seg_map,) = work.glob("*/controls/*_seg.png")
    # ADE20K's palette colour of "road" (class 7 of the SD 2.1 seg ControlNet's 150)
    assert {tuple(c) for c in np.asarray(Image.open(seg_map).convert("RGB")).reshape(-1, 3)} == {(140, 140, 140)}
