"""Hypothesis: random small labelled datasets (labels with unicode, dots, slashes, spaces and
case-only differences; random image sizes; every --fit; every input and output format) augmented
with the tiny model, then read back as a trainer would (datasets, pycocotools, webdataset, a
folder walk). Whatever the dataset: exactly its labels and boxes (mapped through the recorded
geometry), no duplicate key, every listed file there and decodable, and the files around SRC and
OUT byte for byte unchanged after a run killed midway, its resume, and a rerun.

The default run tries a few datasets (well under a minute); the slow one tries many more."""

import glob
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import augment_tiny
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from doge.augmentation.contact import SHEET_PREFIX
from doge.rendering.geometry import Geometry

TRICKY = [
    ".",
    "..",
    "_",
    "a/b",
    "a_b",
    "a.",
    "a",
    "a.b",
    "Cat",
    "cat",
    " x",
    "x ",
    "é",
    "e\u0301",
    "日本",
    "a b",
    "%2E",
    "masks",
    "metadata.jsonl",
]
STEMS = ["p.q", "p_q", "x y", "é", "Ab", "ab", "z%2E", "n.0"]


@pytest.fixture(scope="module")
def home(gap_home):
    return gap_home


def label_text():
    chars = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"))
    return st.sampled_from(TRICKY) | st.text(chars, min_size=1, max_size=8).filter(lambda t: t.strip())


@st.composite
def datasets_(draw):
    input_format = draw(st.sampled_from(["folders", "imagefolder", "coco"]))
    labels = draw(st.lists(label_text(), min_size=1, max_size=3, unique=True))
    if input_format == "folders":  # a folder's name is its label: only names a folder can have
        labels = [lab for lab in labels if "/" not in lab and lab not in (".", "..") and not lab.startswith(".")]
        labels = [lab for lab in labels if len(lab.encode()) < 100 and "\x00" not in lab] or ["cls"]
    images = []
    for i in range(draw(st.integers(1, 3))):
        stem = draw(st.sampled_from(STEMS)) + f"-{i}"
        size = (draw(st.integers(16, 96)), draw(st.integers(16, 96)))
        label = draw(st.sampled_from(labels))
        w, h = size
        box = [draw(st.integers(0, w - 4)), draw(st.integers(0, h - 4))]
        box += [draw(st.integers(2, w - box[0])), draw(st.integers(2, h - box[1]))]
        images.append({"stem": stem, "size": size, "label": label, "box": box})
    return {
        "input": input_format,
        "images": images,
        "fit": draw(st.sampled_from(["keep", "crop", "pad"])),
        "output": draw(st.sampled_from(["imagefolder", "coco", "webdataset", "parquet"])),
        "with_sources": draw(st.sampled_from(["none", "link", "copy"])),
        "masks": input_format != "coco" and draw(st.booleans()),
    }


def make_source(root: Path, spec: dict) -> tuple[Path, dict, dict]:
    """SRC laid out as the spec says; returns (annotations file or None, label per file, box per file)."""
    src = root / "src"
    labels, boxes, rows = {}, {}, []
    doc = {"images": [], "annotations": [], "categories": []}
    cats = {lab: i + 1 for i, lab in enumerate(sorted({im["label"] for im in spec["images"]}))}
    doc["categories"] = [{"id": i, "name": lab} for lab, i in cats.items()]
    for n, im in enumerate(spec["images"]):
        rel = f"{im['label']}/{im['stem']}.png" if spec["input"] == "folders" else f"{im['stem']}.png"
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        w, h = im["size"]
        rng = np.random.default_rng(n)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        labels[str(path)] = im["label"]
        if spec["masks"]:
            mask = root / "masks" / rel
            mask.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.choice(np.array([0, 3, 9], np.uint8), size=(h, w))).save(mask)
        boxes[str(path)] = im["box"]
        rows.append({"file_name": rel, "label": im["label"]})
        doc["images"].append({"id": n + 1, "file_name": rel, "width": w, "height": h})
        doc["annotations"].append(
            {"id": n + 1, "image_id": n + 1, "category_id": cats[im["label"]], "bbox": im["box"], "iscrowd": 0}
        )
    annotations = None
    if spec["input"] == "imagefolder":
        (src / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif spec["input"] == "coco":
        annotations = root / "instances.json"
        annotations.write_text(json.dumps(doc))
    return annotations, labels, boxes


def snapshot(folder: Path, skip=()) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.relative_to(folder).as_posix().startswith(skip)
    }


def geometries(out: Path) -> dict[tuple[str, int], Geometry]:
    """(source path, k) → the geometry its manifest line records."""
    found = {}
    for manifest in Path(f"{out.parent}/.{out.name}.doge-work").glob("*/manifest.jsonl"):
        for line in manifest.read_text().splitlines():
            entry = json.loads(line)
            found[(entry["source"], entry["k"])] = Geometry.from_json(entry["geometry"])
    return found


def decodes(data: bytes) -> bool:
    import io

    with Image.open(io.BytesIO(data)) as image:
        image.load()
    return True


def expected_mask(root: Path, spec: dict, meta: dict, geo: dict) -> np.ndarray:
    """The source's label image laid out as the output by the recorded geometry (nearest neighbour)."""
    source = Path(meta["doge_source"])
    mask = Image.open(root / "masks" / source.relative_to(root / "src"))
    if meta["doge_generated"]:
        mask = geo[(meta["doge_source"], meta["doge_k"])].apply(mask, resample=Image.Resampling.NEAREST, fill=0)
    return np.asarray(mask)


def as_array(data) -> np.ndarray:
    import io

    return np.asarray(data if isinstance(data, Image.Image) else Image.open(io.BytesIO(data)))


def check_output(out: Path, spec: dict, labels: dict, boxes: dict, summary: dict) -> None:
    want_labels = sorted(set(labels.values()))
    assert summary["class_names"] == want_labels
    geo = geometries(out)
    fmt = spec["output"]
    records: list[tuple[dict, bytes | None]] = []  # (doge columns + label, image bytes)
    if fmt == "imagefolder":
        rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
        names = [r["file_name"] for r in rows]
        assert len(set(names)) == len(names)
        walked: dict[str, set] = {}
        for r in rows:
            records.append((r, (out / r["file_name"]).read_bytes()))
            if spec["masks"]:
                mask = (out / "masks" / r["file_name"]).with_suffix(".png").read_bytes()
                assert np.array_equal(as_array(mask), expected_mask(out.parent, spec, r, geo))
            folder = r["file_name"].rsplit("/", 1)[0] if "/" in r["file_name"] else ""
            walked.setdefault(folder, set()).add(r["label"])
        # a folder walk: one label per folder, exactly metadata's labels
        assert all(len(v) == 1 for v in walked.values())
        on_disk = {
            p.parent.relative_to(out).as_posix()
            for p in out.rglob("*.png")
            if "masks" not in p.parts and not (p.parent == out and p.name.startswith(SHEET_PREFIX))
        }  # the contact sheets at OUT's top are no class's images; a class-folder loader ignores them
        assert on_disk == {f or "." for f in walked}
        import datasets

        ds = datasets.load_dataset("imagefolder", data_dir=str(out), split="train").class_encode_column("label")
        assert len(ds) == len(rows) and ds.features["label"].names == sorted({r["label"] for r in rows})
    elif fmt == "coco":
        from pycocotools.coco import COCO

        coco = COCO(str(out / "annotations.json"))
        cats = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
        for image in coco.loadImgs(coco.getImgIds()):
            data = (out / image["file_name"]).read_bytes()
            records.append(({**image, "label": labels[image["doge_source"]]}, data))
            if spec["masks"]:
                mask = (out / "masks" / image["file_name"].removeprefix("images/")).with_suffix(".png")
                assert np.array_equal(as_array(mask.read_bytes()), expected_mask(out.parent, spec, image, geo))
            assert Image.open(out / image["file_name"]).size == (image["width"], image["height"])
            anns = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
            box = boxes[image["doge_source"]] if spec["input"] == "coco" else None
            if box is None:  # a class became one whole-image annotation
                assert [cats[a["category_id"]] for a in anns] == [labels[image["doge_source"]]]
                continue
            if image["doge_generated"]:
                mapped = geo[(image["doge_source"], image["doge_k"])].map_box(box)
            else:
                mapped = tuple(box)
            if mapped is None:
                assert anns == []
            else:
                (ann,) = anns
                assert ann["bbox"] == pytest.approx(list(mapped), abs=0.01)
                assert cats[ann["category_id"]] == labels[image["doge_source"]]
    elif fmt == "webdataset":
        import webdataset as wds

        samples = list(wds.WebDataset(sorted(glob.glob(str(out / "shard-*.tar"))), shardshuffle=False))
        keys = [s["__key__"] for s in samples]
        assert len(set(keys)) == len(keys)
        for s in samples:
            meta = json.loads(s["json"])
            assert want_labels[int(s["cls"])] == meta["label"]
            records.append((meta, s.get("png") or s.get("jpg")))
            if spec["masks"]:
                assert np.array_equal(as_array(s["mask.png"]), expected_mask(out.parent, spec, meta, geo))
    else:
        import datasets

        ds = datasets.load_dataset("parquet", data_dir=str(out), split="train")
        assert ds.features["label"].names == want_labels
        names = ds["file_name"]
        assert len(set(names)) == len(names)
        for row in ds:
            label = ds.features["label"].int2str(row["label"])
            assert row["image"].size
            records.append(({**row, "label": label}, None))
            if spec["masks"]:
                assert np.array_equal(as_array(row["mask"]), expected_mask(out.parent, spec, row, geo))
            if spec["input"] == "coco" and row["doge_generated"]:
                mapped = geo[(row["doge_source"], row["doge_k"])].map_box(boxes[row["doge_source"]])
                got = row["objects"]["bbox"]
                assert got == ([pytest.approx(list(mapped), abs=0.01)] if mapped else [])
    n_sources = len(labels) if spec["with_sources"] != "none" else 0
    assert len(records) == summary["images"] == summary["generated"] + n_sources
    for meta, data in records:
        assert meta["label"] == labels[meta["doge_source"]]  # exactly its source's label
        assert data is None or decodes(data)


def exercise(spec: dict, home: Path, tiny_model: Path) -> None:
    from doge.rendering import batch

    root = Path(tempfile.mkdtemp(prefix="doge-inv-"))
    try:
        annotations, labels, boxes = make_source(root, spec)
        for rel in ("sentinel.bin", "nested/s.png", ".out.doge-work.txt", "src.bak/x.png"):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(os.urandom(32))
        around = snapshot(root, skip=("src/", "out/", ".out.doge-work/"))
        src_before = snapshot(root / "src")
        out = root / "out"
        options = {
            "batch_size": 1,
            "annotations": annotations,
            "output_format": spec["output"],
            "fit": spec["fit"],
            "with_sources": spec["with_sources"],
            "per_class": 2,
            "masks": root / "masks" if spec["masks"] else None,
        }

        def augment():
            return augment_tiny(root / "src", out, tiny_model, home, **options)

        real_write, calls = batch.OutputWriter.write, {"n": 0}

        def dying_write(self, outputs):
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt  # killed midway
            real_write(self, outputs)

        batch.OutputWriter.write = dying_write
        try:
            with pytest.raises(KeyboardInterrupt):
                augment()
        finally:
            batch.OutputWriter.write = real_write
        for step in ("resume", "rerun"):
            summary = augment()
            check_output(out, spec, labels, boxes, summary)
            assert snapshot(root, skip=("src/", "out/", ".out.doge-work/")) == around, step
            assert snapshot(root / "src") == src_before, step
        assert summary["written"] == 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]}


@settings(max_examples=3, derandomize=True, **COMMON)
@given(spec=datasets_())
def test_augment_invariants_hold_for_random_datasets(spec, home, tiny_model):
    exercise(spec, home, tiny_model)


@pytest.mark.slow
@settings(max_examples=40, **COMMON)
@given(spec=datasets_())
def test_augment_invariants_hold_for_many_random_datasets(spec, home, tiny_model):
    exercise(spec, home, tiny_model)
