"""`doge augment` writes only what it should, where it should (issue 20): every path from a user's
file stays inside its root, only decodable sources travel, class folders and WebDataset keys are
unique by construction, Parquet carries typed labels, COCO masks and boxes stay consistent.

Each test here failed on the code before: it names the finding it holds down."""

import functools
import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import augment_tiny, coco_rle
from PIL import Image

from doge.cli.main import get_cli
from doge.errors import DogeError


@pytest.fixture(scope="module")
def home(gap_home):
    return gap_home


@pytest.fixture
def run(home, tiny_model):
    """``run(src, out, **options)``: doge.augment with the tiny model in this module's home."""
    return functools.partial(augment_tiny, tiny_model=tiny_model, home=home)


def picture(path: Path, size=(40, 32), seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def metadata(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]


# -- containment: the one helper -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("/etc/passwd", "absolute path"),
        ("../x.png", "climbs out"),
        ("a/../../x.png", "climbs out"),
        ("C:/x.png", "absolute path"),
        ("a\\b.png", "backslash"),
        ("a\nb.png", "control character"),
        ("a" * 300 + ".png", "longer than a file system allows"),
        ("x\ud800.png", "lone surrogate"),
        ("a/" * 2100 + "b.png", "longer than a file system allows"),
        ("", "not a file name"),
        (".", "not a file name"),
        (7, "not a file name"),
    ],
)
def test_relative_key_refuses_what_leaves_its_root(name, said):
    from doge.paths import relative_key

    with pytest.raises(DogeError) as err:
        relative_key(name, "meta.jsonl line 3")
    assert said in str(err.value) and "meta.jsonl line 3" in str(err.value) and "\n" not in str(err.value)
    assert relative_key("./a/./b.png", "x") == "a/b.png"


def test_inside_follows_symlinks(tmp_path):
    from doge.paths import inside

    root, outside = tmp_path / "root", tmp_path / "outside"
    picture(outside / "o.png")
    picture(root / "in.png")
    (root / "link.png").symlink_to(outside / "o.png")
    (root / "dir").symlink_to(outside)
    (root / "ok.png").symlink_to(root / "in.png")
    assert inside(root, "ok.png", "w") == root / "ok.png"
    for name in ("link.png", "dir/o.png"):
        with pytest.raises(DogeError, match="symlink"):
            inside(root, name, "w")


# -- finding: metadata / COCO file_name outside the dataset is read silently --------------------


def _hostile_names(tmp_path: Path) -> dict[str, str]:
    outside = picture(tmp_path / "outside.png", seed=9)
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "src" / "escape.png").symlink_to(outside)
    return {"absolute": str(outside), "dotdot": "../outside.png", "symlink": "escape.png"}


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink"])
@pytest.mark.parametrize("table", ["jsonl", "csv"])
def test_metadata_file_name_outside_src_is_refused_naming_the_line(tmp_path, kind, table):
    from doge.augmentation.inputs import read_dataset

    name = _hostile_names(tmp_path)[kind]
    src = tmp_path / "src"
    picture(src / "good.png")
    if table == "jsonl":
        rows = [{"file_name": "good.png", "label": "a"}, {"file_name": name, "label": "b"}]
        (src / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        where = "metadata.jsonl line 2"
    else:
        (src / "metadata.csv").write_text(f"file_name,label\ngood.png,a\n{name},b\n")
        where = "metadata.csv row 2"
    with pytest.raises(DogeError) as err:
        read_dataset(src)
    assert where in str(err.value) and "\n" not in str(err.value), err.value


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink"])
def test_coco_file_name_outside_src_is_refused_naming_the_image(tmp_path, kind):
    from doge.augmentation.inputs import read_dataset

    name = _hostile_names(tmp_path)[kind]
    src = tmp_path / "src"
    picture(src / "good.png")
    doc = {
        "images": [{"id": 1, "file_name": "good.png"}, {"id": 77, "file_name": name}],
        "annotations": [],
        "categories": [{"id": 1, "name": "car"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    with pytest.raises(DogeError) as err:
        read_dataset(src, annotations=tmp_path / "ann.json")
    assert "image 77" in str(err.value) and "\n" not in str(err.value), err.value


def test_a_mask_symlinked_out_of_the_masks_folder_is_refused(tmp_path):
    from doge.augmentation.inputs import read_dataset

    src, masks = tmp_path / "src", tmp_path / "masks"
    picture(src / "a.png")
    picture(tmp_path / "elsewhere.png")
    masks.mkdir()
    (masks / "a.png").symlink_to(tmp_path / "elsewhere.png")
    with pytest.raises(DogeError, match="symlink"):
        read_dataset(src, masks=masks)


def test_with_sources_copy_never_copies_a_file_from_outside_src(run, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2\n")
    src = tmp_path / "src"
    picture(src / "a.png")
    rows = [{"file_name": "a.png", "label": "cat"}, {"file_name": str(secret), "label": "cat"}]
    (src / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    with pytest.raises(DogeError, match="line 2"):
        run(src, out, per_class=1, with_sources="copy")
    assert not out.exists() or not any(b"hunter2" in p.read_bytes() for p in out.rglob("*") if p.is_file())


# -- finding: the stale-row clean-up deleted a file outside OUT ---------------------------------


@pytest.mark.parametrize("name", ["absolute", "../victim.txt", "cat/../../victim.txt", "link/victim.txt"])
def test_a_hostile_row_in_an_existing_out_is_refused_and_deletes_nothing(run, tmp_path, name):
    src = tmp_path / "src"
    picture(src / "cat" / "a.png")
    out = tmp_path / "out"
    run(src, out, per_class=1)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (out / "link").symlink_to(tmp_path)
    name = str(victim) if name == "absolute" else name
    with open(out / "metadata.jsonl", "a") as f:
        f.write(json.dumps({"file_name": name, "label": "cat", "doge_generated": True}) + "\n")
    with pytest.raises(DogeError) as err:
        run(src, out, per_class=1)
    assert "metadata.jsonl line 2" in str(err.value)
    assert victim.read_text() == "keep me"


def test_a_class_folder_symlinked_out_of_out_is_refused_before_rendering(run, tmp_path):
    src = tmp_path / "src"
    picture(src / "cat" / "a.png")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "cat").symlink_to(elsewhere)
    with pytest.raises(DogeError, match="class folder"):
        run(src, out, per_class=1)
    assert list(elsewhere.iterdir()) == []


def test_a_hostile_coco_file_in_out_is_refused(run, tmp_path):
    src = tmp_path / "src"
    picture(src / "cat" / "a.png")
    out = tmp_path / "out"
    run(src, out, per_class=1, output_format="coco")
    victim = tmp_path / "victim.png"
    picture(victim)
    doc = json.loads((out / "annotations.json").read_text())
    doc["images"].append({"id": 99, "file_name": str(victim), "doge_generated": True})
    (out / "annotations.json").write_text(json.dumps(doc))
    with pytest.raises(DogeError, match="image 99"):
        run(src, out, per_class=1, output_format="coco")
    assert victim.is_file()


def test_filter_refuses_a_manifest_line_naming_a_file_outside_its_folder(home, tmp_path):
    from doge.quality.filtering import filter_outputs

    out = tmp_path / "render"
    out.mkdir()
    victim = picture(tmp_path / "victim.png")
    line = {"image": str(victim), "source": str(victim), "gaps": [{"ref": "real->painting@v1"}]}
    (out / "manifest.jsonl").write_text(json.dumps(line) + "\n")
    with pytest.raises(DogeError, match="manifest.jsonl line 1"):
        filter_outputs(out, home=home, delete=True, min_target_score=2.0, progress=False)
    assert victim.is_file()


# -- finding: sources that fail to decode still travel ------------------------------------------


def bad_sources(src: Path) -> None:
    (src / "cat" / "text.png").write_text("not a picture")
    good = picture(src / "cat" / "trunc.png", size=(64, 64), seed=3).read_bytes()
    (src / "cat" / "trunc.png").write_bytes(good[: len(good) // 2])
    bomb = Image.new("1", (12000, 12000))  # 144 M pixels: over PIL's decompression-bomb limit
    bomb.save(src / "dog" / "bomb.png")


@pytest.mark.parametrize("fmt", ["imagefolder", "webdataset"])
def test_undecodable_sources_are_not_copied_listed_or_rendered(run, tmp_path, fmt):
    src = tmp_path / "src"
    picture(src / "cat" / "a.png")
    picture(src / "dog" / "b.png", seed=1)
    bad_sources(src)
    out = tmp_path / "out"
    summary = run(src, out, per_class=1, with_sources="copy", output_format=fmt)
    assert {s["file"] for s in summary["skipped_sources"]} == {"cat/text.png", "cat/trunc.png", "dog/bomb.png"}
    assert summary["classes"]["cat"]["skipped"] == 2 and summary["classes"]["dog"]["skipped"] == 1
    assert summary["images"] == 4  # 2 new + 2 real, none of the bad ones
    names = [p.name for p in out.rglob("*") if p.is_file()]
    assert not {"text.png", "trunc.png", "bomb.png"} & set(names)
    if fmt == "imagefolder":
        import datasets

        ds = datasets.load_dataset("imagefolder", data_dir=str(out), split="train")
        assert len(ds) == 4 and all(row["image"].size for row in ds)
    assert "did not decode" in (out / "README.md").read_text()


def test_cli_table_counts_skipped_sources_with_the_reason(home, tiny_model, tmp_path):
    src = tmp_path / "src"
    picture(src / "cat" / "a.png")
    (src / "cat" / "text.png").write_text("not a picture")
    argv = ["--home", str(home), "--quiet", "augment", str(src), "--gap", "real->painting", "--out"]
    argv += [str(tmp_path / "out"), "--per-class", "1", "--model", str(tiny_model), "--steps", "2", "--size", "64"]
    result = CliRunner().invoke(get_cli(), [*argv, "--control", "none"])
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output.splitlines()[0]
    assert "skipped cat/text.png: not an image PIL can read" in result.output


# -- finding: WebDataset keys and class folders collide -----------------------------------------


def test_webdataset_keys_are_unique_and_keep_their_labels(run, tmp_path):
    import webdataset as wds

    src = tmp_path / "src"
    for i, rel in enumerate(["a.b/x.png", "a_b/x.png", "c/p.q.png", "c/p_q.png", "c/p%2Eq.png"]):
        picture(src / rel, seed=i)
    out = tmp_path / "out"
    summary = run(src, out, per_class=1, with_sources="link", output_format="webdataset")
    samples = list(wds.WebDataset(sorted(str(p) for p in out.glob("shard-*.tar")), shardshuffle=False))
    keys = [s["__key__"] for s in samples]
    assert len(samples) == summary["images"] == 8 and len(set(keys)) == 8
    classes = summary["class_names"]
    for s in samples:
        meta = json.loads(s["json"])
        assert classes[int(s["cls"])] == meta["label"] and s["__key__"].startswith(meta["doge_class_folder"] + "/")


LABELS = [
    ".",
    "..",
    "_",
    "a/b",
    "a_b",
    "a.",
    "a",
    "Cat",
    "cat",
    " x",
    "b~0123abcd",
    "é",
    "e\u0301",
    "masks",
    "README.md",
]


def test_imagefolder_class_folders_are_one_per_label(run, tmp_path):
    src = tmp_path / "src"
    rows = []
    for i, label in enumerate(LABELS):
        picture(src / f"{i}.png", seed=i)
        rows.append({"file_name": f"{i}.png", "label": label})
    (src / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    summary = run(src, out, per_class=1, with_sources="copy")
    by_folder: dict[str, set] = {}
    for row in metadata(out):
        folder = row["file_name"].rsplit("/", 1)[0]
        by_folder.setdefault(folder, set()).add(row["label"])
        assert folder == row["doge_class_folder"] == summary["class_folders"][row["label"]]
    # A folder walk (class = folder) gives exactly metadata's labels: one label per folder, one folder per label.
    assert all(len(labels) == 1 for labels in by_folder.values()) and len(by_folder) == len(LABELS)
    # (the class folders below OUT, as ImageFolder walks them; OUT's own top-level files, such as the
    # contact sheets, belong to no class)
    walked = {p.parent.name for p in out.rglob("*.png") if p.parent != out}
    assert walked == set(by_folder)
    assert len({f.casefold() for f in walked}) == len(walked)  # apart on a case-insensitive disk too
    # The mapping is in the card.
    import yaml

    header = yaml.safe_load((out / "README.md").read_text().split("---")[1])
    mapping = {m["label"]: m["folder"] for m in header["doge"]["class_folders"]}
    assert mapping == summary["class_folders"]
    assert mapping["a"] == "a" and mapping["a_b"] == "a_b" and mapping["a/b"].startswith("a_b~")


def test_class_folders_are_stable_and_documented():
    from doge.augmentation.naming import class_folders, label_hash

    folders = class_folders(["cat", "dog", "a/b", ".."])
    lone = "x\ud800"  # a lone surrogate, which JSON can carry
    assert class_folders([lone])[lone] == "x_~" + label_hash(lone)
    assert folders["cat"] == "cat" and folders["a/b"] == f"a_b~{label_hash('a/b')}"
    assert folders[".."] == f"__~{label_hash('..')}"
    assert class_folders(["cat", "a/b"])["a/b"] == folders["a/b"]


def test_a_300_character_label_is_shortened_not_half_written(run, tmp_path):
    src = tmp_path / "src"
    picture(src / "a.png")
    label = "ü" * 300
    (src / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "label": label}) + "\n")
    out = tmp_path / "out"
    summary = run(src, out, per_class=1)
    folder = summary["class_folders"][label]
    assert len(folder.encode()) <= 120 and (out / folder).is_dir()
    assert metadata(out)[0]["label"] == label


def test_a_file_name_too_long_is_refused_before_anything_is_written(run, tmp_path):
    src = tmp_path / "src"
    picture(src / "cat" / ("x" * 120) / ("y" * 120 + ".png"))
    out = tmp_path / "out"
    with pytest.raises(DogeError, match="bytes"):
        run(src, out, per_class=1)
    assert not out.exists()


def test_a_source_named_like_a_new_image_is_refused_with_sources(run, tmp_path):
    src = tmp_path / "src"
    picture(src / "cat" / "x.png")
    picture(src / "cat" / "x_0.png", seed=1)
    with pytest.raises(DogeError, match="x_0"):
        run(src, tmp_path / "out", per_class=1, with_sources="copy", dry_run=True)


# -- Parquet: typed labels -----------------------------------------------------------------------


def test_parquet_output_loads_with_class_label_names(run, tmp_path):
    import datasets

    src = tmp_path / "src"
    for i, rel in enumerate(["dog/a.png", "cat/b.png", "cat/c.png", "a.b/d.png"]):
        picture(src / rel, seed=i)
    out = tmp_path / "out"
    summary = run(src, out, per_class=2, with_sources="copy", output_format="parquet", shard_size=1)
    ds = datasets.load_dataset("parquet", data_dir=str(out), split="train")
    assert ds.features["label"].names == summary["class_names"] == ["a.b", "cat", "dog"]
    assert len(ds) == summary["images"] == 10 and len(list((out / "data").glob("*.parquet"))) == 10
    for row in ds:
        assert row["image"].size in {(64, 64), (40, 32)}
        assert ds.features["label"].int2str(row["label"]) == Path(row["doge_source"]).parent.name
    assert sum(ds["doge_generated"]) == 6
    import yaml

    header = yaml.safe_load((out / "README.md").read_text().split("---")[1])
    assert header["doge"]["load"] == f'datasets.load_dataset("parquet", data_dir="{out}", split="train")'


def test_imagefolder_card_line_gives_the_class_order(run, tmp_path):
    import datasets  # noqa: F401 -- the card's line uses it
    import yaml

    src = tmp_path / "src"
    for i, rel in enumerate(["dog/a.png", "cat/b.png"]):
        picture(src / rel, seed=i)
    out = tmp_path / "out"
    summary = run(src, out, per_class=1)
    header = yaml.safe_load((out / "README.md").read_text().split("---")[1])
    ds = eval(header["doge"]["load"])
    assert ds.features["label"].names == summary["class_names"] == header["doge"]["classes"]


# -- COCO consistency ----------------------------------------------------------------------------


def test_a_swapped_rle_size_is_refused_without_declared_size(tmp_path):
    from doge.augmentation.inputs import read_dataset

    src = tmp_path / "src"
    picture(src / "a.png", size=(96, 64))
    mask = np.zeros((96, 64), bool)  # height and width swapped
    mask[10:20, 10:20] = True
    doc = {
        "images": [{"id": 1, "file_name": "a.png"}],
        "annotations": [
            {"id": 5, "image_id": 1, "category_id": 1, "segmentation": coco_rle(mask), "bbox": [10, 10, 10, 10]}
        ],
        "categories": [{"id": 1, "name": "car"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    with pytest.raises(DogeError) as err:
        read_dataset(src, annotations=tmp_path / "ann.json")
    assert "annotation 5" in str(err.value) and "96x64" in str(err.value) and "\n" not in str(err.value)


def test_coco_zero_area_dropped_counted_and_mask_boxes_agree(run, tmp_path):
    from pycocotools import mask as mu
    from pycocotools.coco import COCO

    src = tmp_path / "src"
    picture(src / "a.png", size=(96, 64))
    mask = np.zeros((64, 96), bool)
    mask[7:41, 29:91] = True
    anns = [
        # a polygon in the strip --fit crop cuts away (x < 16): nothing of it is left
        {
            "id": 1,
            "image_id": 1,
            "category_id": 1,
            "segmentation": [[1, 1, 10, 1, 10, 10, 1, 10]],
            "bbox": [1, 1, 9, 9],
        },
        # a degenerate polygon (a line): zero area
        {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [[20, 20, 40, 20, 60, 20]], "bbox": [20, 20, 40, 0]},
        # a mask whose declared bbox is a little loose
        {
            "id": 3,
            "image_id": 1,
            "category_id": 2,
            "segmentation": coco_rle(mask),
            "bbox": [28, 6, 64, 36],
            "iscrowd": 1,
        },
    ]
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 96, "height": 64}], "annotations": anns}
    doc["categories"] = [{"id": 1, "name": "car"}, {"id": 2, "name": "road"}]
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    out = tmp_path / "out"
    summary = run(src, out, annotations=tmp_path / "ann.json", output_format="coco", ratio=1, fit="crop")
    assert summary["dropped_annotations"] == 2
    coco = COCO(str(out / "annotations.json"))
    (ann,) = coco.loadAnns(coco.getAnnIds())
    assert ann["area"] > 0
    x, y, w, h = mu.toBbox(coco.annToRLE(ann))
    assert np.allclose([x, y, w, h], ann["bbox"], atol=1.0)


def test_parquet_coco_objects_are_typed(run, tmp_path):
    import datasets

    src = tmp_path / "src"
    picture(src / "a.png", size=(64, 64))
    mask = np.zeros((64, 64), bool)
    mask[8:24, 8:40] = True
    anns = [
        {"id": 1, "image_id": 1, "category_id": 7, "bbox": [4, 4, 10, 10]},
        {
            "id": 2,
            "image_id": 1,
            "category_id": 9,
            "segmentation": [[0, 30, 20, 30, 20, 50, 0, 50]],
            "bbox": [0, 30, 20, 20],
        },
        {"id": 3, "image_id": 1, "category_id": 9, "segmentation": coco_rle(mask), "bbox": [8, 8, 32, 16]},
    ]
    doc = {"images": [{"id": 1, "file_name": "a.png"}], "annotations": anns}
    doc["categories"] = [{"id": 7, "name": "car"}, {"id": 9, "name": "road"}]
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    out = tmp_path / "out"
    run(src, out, annotations=tmp_path / "ann.json", output_format="parquet", ratio=1)
    ds = datasets.load_dataset("parquet", data_dir=str(out), split="train")
    objects = ds.features["objects"]
    assert objects["category"].feature.names == ["car", "road"]
    (row,) = ds
    got = row["objects"]
    assert [objects["category"].feature.int2str(c) for c in got["category"]] == ["car", "road", "road"]
    assert got["bbox"][0] == pytest.approx([4, 4, 10, 10]) and got["polygons"][1] == [
        pytest.approx([0, 30, 20, 30, 20, 50, 0, 50])
    ]
    from pycocotools import mask as mu

    rle = got["rle"][2]
    decoded = mu.decode({"size": rle["size"], "counts": rle["counts"].encode()})
    assert np.array_equal(decoded.astype(bool), mask)


def test_the_sentinel_tree_is_untouched(run, tmp_path):
    """A run, a rerun with another budget (the stale clean-up) and each format leave every file
    around SRC and OUT byte for byte as it was."""
    src = tmp_path / "src"
    picture(src / "cat" / "a.png")
    picture(src / "dog" / "b.png", seed=1)
    for rel in ("sentinel.txt", "deep/s.png", ".out.doge-work.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(os.urandom(64))
    before = {k: v for k, v in snapshot(tmp_path).items() if not k.startswith(("src/", "out/"))}
    src_before = snapshot(src)
    out = tmp_path / "out"
    run(src, out, per_class=2, with_sources="link")
    run(src, out, per_class=1, with_sources="link")
    after = {k: v for k, v in snapshot(tmp_path).items() if not k.startswith(("src/", "out/", ".out.doge-work/"))}
    assert after == before and snapshot(src) == src_before
    assert sorted(r["doge_k"] for r in metadata(out) if r["doge_generated"]) == [0, 0]
    assert len(list(out.rglob("*_1.png"))) == 0  # the images of the first budget are gone


def test_a_fifo_named_like_an_image_is_skipped_not_read(tmp_path):
    from doge.augmentation.inputs import read_dataset

    src = tmp_path / "src"
    picture(src / "cat" / "a.png")
    os.mkfifo(src / "cat" / "pipe.png")  # reading it would block forever
    dataset = read_dataset(src)
    assert [s.rel for s in dataset.sources] == ["cat/a.png"]
    assert dataset.skipped == [
        {"file": "cat/pipe.png", "label": "cat", "reason": "not a regular file (a FIFO, a device)"}
    ]


def test_parquet_keeps_coco_categories_that_share_a_name_apart(run, tmp_path):
    import datasets

    src = tmp_path / "src"
    picture(src / "a.png", size=(64, 64))
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 4, 10, 10]},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [20, 20, 10, 10]},
    ]
    doc = {"images": [{"id": 1, "file_name": "a.png"}], "annotations": anns}
    doc["categories"] = [{"id": 1, "name": "car"}, {"id": 2, "name": "car"}]
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    out = tmp_path / "out"
    run(src, out, annotations=tmp_path / "ann.json", output_format="parquet", ratio=1)
    ds = datasets.load_dataset("parquet", data_dir=str(out), split="train")
    assert ds.features["objects"]["category"].feature.names == ["car (id 1)", "car (id 2)"]
    assert ds[0]["objects"]["category"] == [0, 1]


@pytest.mark.parametrize("own", ["metadata.jsonl", "README.md"])
def test_outs_own_files_symlinked_out_are_refused_not_read_or_replaced(run, tmp_path, own):
    src = tmp_path / "src"
    picture(src / "cat" / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text('{"file_name": "cat/a_0.png"}\n')
    (out / own).symlink_to(victim)
    with pytest.raises(DogeError, match=own.replace(".", r"\.")):
        run(src, out, per_class=1)
    assert victim.read_text() == '{"file_name": "cat/a_0.png"}\n' and (out / own).is_symlink()


@pytest.mark.parametrize("inner", ["src", "masks"])
def test_an_out_that_holds_src_or_masks_is_refused(home, tmp_path, inner):
    import doge

    out = tmp_path / "data"
    src = (out if inner == "src" else tmp_path) / "src"
    masks = (out if inner == "masks" else tmp_path) / "masks"
    picture(src / "a.png")
    picture(masks / "a.png")
    with pytest.raises(DogeError, match=("SRC" if inner == "src" else "--masks") + " .* lies inside --out"):
        doge.augment(src, ["real->painting"], out, home=home, masks=masks, per_class=1, dry_run=True)


@pytest.mark.parametrize("fmt", ["imagefolder", "webdataset"])
def test_sources_whose_names_differ_in_case_both_travel(run, tmp_path, fmt):
    src = tmp_path / "src"
    picture(src / "cat" / "Ab.png")
    picture(src / "cat" / "ab.png", seed=1)
    out = tmp_path / "out"
    summary = run(src, out, per_class=2, with_sources="copy", output_format=fmt)
    assert summary["images"] == 4
