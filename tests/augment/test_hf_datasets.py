"""`doge augment` reads Hugging Face datasets: a save_to_disk folder, a folder of Parquet shards, and
(Python API) a datasets.Dataset with a label, a COCO-style objects column, or a mask column."""

import functools
import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import augment_tiny
from PIL import Image

from doge.cli.main import get_cli
from doge.errors import DogeError

datasets = pytest.importorskip("datasets")


@pytest.fixture(scope="module")
def home(gap_home):
    return gap_home


@pytest.fixture
def run(home, tiny_model):
    """``run(src, out, **options)``: doge.augment with the tiny model in this module's home."""
    return functools.partial(augment_tiny, tiny_model=tiny_model, home=home)


def photos(domains, n: int, size=(96, 64)) -> list[Image.Image]:
    return [Image.open(f).convert("RGB").resize(size) for f in sorted(domains["real"].iterdir())[:n]]


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def classified(domains):
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "dog"])})
    return datasets.Dataset.from_dict({"image": photos(domains, 4), "label": [0, 0, 1, 1]}, features=features)


def rows(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]


def test_a_save_to_disk_folder_through_the_cli(home, tiny_model, classified, tmp_path):
    saved = tmp_path / "saved"
    classified.save_to_disk(str(saved))
    out = tmp_path / "aug"
    argv = ["--home", str(home), "--quiet", "augment", str(saved), "--gap", "real->painting", "--out", str(out)]
    argv += ["--model", str(tiny_model), "--control", "none", "--size", "64", "--steps", "2", "--per-class", "2"]
    argv += ["--json"]
    result = CliRunner().invoke(get_cli(), argv)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["generated"] == 4 and summary["class_names"] == ["cat", "dog"]
    loaded = datasets.load_dataset("imagefolder", data_dir=str(out), split="train")
    assert sorted(loaded["label"]) == ["cat", "cat", "dog", "dog"] or sorted(
        loaded.features["label"].int2str(v) for v in loaded["label"]
    ) == ["cat", "cat", "dog", "dog"]
    # the rows' stored bytes, not re-encoded: a source's digest is its cell's bytes' digest
    import hashlib

    cells = classified.cast_column("image", datasets.Image(decode=False))["image"]
    digests = {hashlib.sha256(c["bytes"]).hexdigest() for c in cells}
    assert {r["doge_source_sha256"] for r in rows(out)} <= digests


def test_parquet_shards_and_a_rerun_makes_nothing_again(run, classified, tmp_path):
    shards = tmp_path / "parquet" / "data"
    shards.mkdir(parents=True)
    classified.select(range(2)).to_parquet(str(shards / "train-00000-of-00002.parquet"))
    classified.select(range(2, 4)).to_parquet(str(shards / "train-00001-of-00002.parquet"))
    first = run(tmp_path / "parquet", tmp_path / "aug", per_class=1)
    assert first["generated"] == 2 and first["class_names"] == ["cat", "dog"] and first["written"] == 2
    again = run(tmp_path / "parquet", tmp_path / "aug", per_class=1)
    assert again["written"] == 0 and again["skipped"] == 2


def test_a_dataset_with_objects_gives_coco_with_boxes_following_the_geometry(run, domains, tmp_path):
    from pycocotools.coco import COCO

    features = datasets.Features(
        {
            "image": datasets.Image(),
            "objects": {
                "bbox": datasets.List(datasets.List(datasets.Value("float32"), length=4)),
                "category": datasets.List(datasets.ClassLabel(names=["car", "road"])),
            },
        }
    )
    objects = [{"bbox": [[12, 6, 30, 20], [0, 30, 48, 30]], "category": [0, 1]}] * 2
    ds = datasets.Dataset.from_dict({"image": photos(domains, 2), "objects": objects}, features=features)
    summary = run(ds, tmp_path / "aug", output_format="coco", ratio=1)
    assert summary["src"].startswith("datasets.Dataset(") and summary["generated"] == 2
    coco = COCO(str(tmp_path / "aug" / "annotations.json"))
    assert {c["name"] for c in coco.loadCats(coco.getCatIds())} == {"car", "road"}
    boxes = sorted(tuple(a["bbox"]) for a in coco.loadAnns(coco.getAnnIds()) if a["category_id"] == 1)
    # 96 x 64 kept on 64 x 64: scaled by 2/3 to 64 x 43, letterboxed 10 px from the top
    assert boxes == [pytest.approx((8, 6 * 43 / 64 + 10, 20, 20 * 43 / 64), abs=0.01)] * 2


def test_a_dataset_with_a_mask_column_gives_masks_resized_nearest(run, domains, tmp_path):
    rng = np.random.default_rng(0)
    masks = [Image.fromarray(rng.choice([0, 7, 19], size=(48, 80)).astype(np.uint8)) for _ in range(2)]
    ds = datasets.Dataset.from_dict(
        {"pixels": photos(domains, 2, (80, 48)), "seg": masks},
        features=datasets.Features({"pixels": datasets.Image(), "seg": datasets.Image()}),
    )
    run(ds, tmp_path / "aug", image_column="pixels", mask_column="seg", per_class=2)
    for r in rows(tmp_path / "aug"):
        got = np.asarray(Image.open(tmp_path / "aug" / "masks" / r["file_name"]))
        index = int(r["doge_source"].rsplit("/", 1)[-1].split(".")[0])
        # keep: 80 x 48 on a 128 x 64 output, scaled to 107 x 64 and letterboxed 10 px left (as for folders)
        want = np.asarray(masks[index].resize((107, 64), Image.Resampling.NEAREST))
        assert got.shape == (64, 128) and np.array_equal(got[:, 10:117], want)


def test_a_missing_column_is_one_line_naming_the_columns(run, classified, tmp_path):
    with pytest.raises(DogeError, match=r"no image column 'picture' \(it has image, label\): pass --image-column"):
        run(classified, tmp_path / "aug", image_column="picture", per_class=1)
    with pytest.raises(DogeError, match="neither a 'cls' nor an 'objects' column"):
        run(classified, tmp_path / "aug", label_column="cls", per_class=1)


def test_a_dataset_dict_needs_a_split_when_it_has_no_train(run, classified, tmp_path):
    saved = tmp_path / "dd"
    datasets.DatasetDict({"a": classified, "b": classified}).save_to_disk(str(saved))
    with pytest.raises(DogeError, match="has the splits a, b: pick one with --split"):
        run(saved, tmp_path / "aug", per_class=1)
    assert run(saved, tmp_path / "aug", per_class=1, split="b")["generated"] == 2


def test_augments_parquet_output_is_an_input_with_its_class_names(run, classified, tmp_path):
    first = run(classified, tmp_path / "aug", per_class=1, output_format="parquet", with_sources="copy")
    assert first["images"] == 6
    again = run(tmp_path / "aug", tmp_path / "aug2", per_class=1, dry_run=True)
    assert sorted(again["per_class"]) == ["cat", "dog"]
    assert {c["sources"] for c in again["per_class"].values()} == {3}  # 2 sources + 1 rendered, per class


def _path_only_shard(root, names: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir(parents=True, exist_ok=True)
    image = pa.array(
        [{"bytes": None, "path": n} for n in names], pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    )
    pq.write_table(pa.table({"image": image, "label": list(range(len(names)))}), str(root / "train.parquet"))


def test_a_cell_without_bytes_is_read_only_inside_the_datasets_own_folder(domains, tmp_path):
    from doge.augmentation.hf import read_hf

    secret = tmp_path / "secret.png"
    secret.write_bytes(png(photos(domains, 1)[0]))
    ok = tmp_path / "ok"
    (ok / "images").mkdir(parents=True)
    (ok / "images" / "a.png").write_bytes(secret.read_bytes())
    _path_only_shard(ok, ["images/a.png"])
    got = read_hf(ok, tmp_path / "cache")
    assert got.sources[0].path.read_bytes() == secret.read_bytes()
    for n, name in enumerate([str(secret), "../secret.png", f"file://{secret}", "http://example.com/x.png"]):
        bad = tmp_path / f"bad{n}"
        _path_only_shard(bad, ["images/a.png", name] if n == 0 else [name])
        if n == 0:
            (bad / "images").mkdir()
            (bad / "images" / "a.png").write_bytes(secret.read_bytes())
        with pytest.raises(DogeError, match=rf"row {1 if n == 0 else 0} \(image\)") as caught:
            read_hf(bad, tmp_path / f"cache{n}")
        assert str(bad) in str(caught.value) and "\n" not in str(caught.value)


def test_a_python_dataset_with_path_only_cells_is_refused(domains, tmp_path):
    from doge.augmentation.hf import read_hf

    secret = tmp_path / "secret.png"
    photos(domains, 1)[0].save(secret)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["cat"])})
    ds = datasets.Dataset.from_dict({"image": [str(secret)], "label": [0]}, features=features)
    with pytest.raises(DogeError, match=r"row 0 \(image\).*must carry its images' bytes"):
        read_hf(ds, tmp_path / "cache")
