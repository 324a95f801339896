"""Malformed inputs to doge augment (COCO JSON, imagefolder metadata, label images): each once gave a
traceback or a silent wrong result; each now gives one line naming the entry, or reads what is valid."""

import json
import re

import numpy as np
import pytest
from PIL import Image

# -- augment: malformed COCO JSON and imagefolder metadata --------------------------------------


def coco_doc() -> dict:
    rle = {"size": [48, 64], "counts": [100, 20, 2952]}  # 48 x 64 = 3072 pixels
    return {
        "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10]},
            {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 20, 0, 20, 20]]},
            {"id": 3, "image_id": 1, "category_id": 1, "segmentation": rle},
        ],
    }


@pytest.fixture
def coco_root(tmp_path):
    root = tmp_path / "coco dir ü"
    root.mkdir()
    Image.new("RGB", (64, 48), "grey").save(root / "a.png")
    return root


def set_path(doc: dict, path: str, value) -> dict:
    """``doc`` with ``value`` at ``path`` ("annotations.0.bbox"); a value of DELETE removes the key."""
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    key = int(last) if isinstance(node, list) else last
    if value is DELETE:
        node.pop(key, None) if isinstance(node, dict) else node.pop(key)
    else:
        node[key] = value
    return doc


DELETE = object()
BAD_COCO = [  # (path, value, what the line says): each once a traceback or a silent wrong result
    ("categories", {"id": 1}, "'categories' is a dict"),
    ("annotations", "nope", "'annotations' is a str"),
    ("categories.0.name", DELETE, "categories[0] (id 1): needs an id and a name"),
    ("images.0", "a.png", "images[0]: has no id"),
    ("images.0.file_name", 5, "images[0] (id 1): has no file_name"),
    ("annotations.0.image_id", DELETE, "annotations[0] (id 1): image_id None"),
    ("annotations.0.image_id", [1], "annotations[0] (id 1): image_id [1]"),
    ("annotations.0.image_id", 7, "image_id 7 is not the id of an image"),
    ("annotations.0.category_id", 9, "category_id 9 is not the id of a category"),
    ("annotations.0.bbox", [1, 1], "bbox [1, 1] is not [x, y, width, height]"),
    ("annotations.0.bbox", ["a", 1, 2, 3], "is not [x, y, width, height]"),
    ("annotations.0.bbox", [1, 1, -10, 10], "negative width or height"),
    ("annotations.0.bbox", [1, 1, float("inf"), 10], "is not [x, y, width, height]"),
    ("annotations.0.area", "big", "area 'big' is not a number"),
    ("annotations.1.segmentation", [[0, 0, 20, 0, 20]], "polygon 0 has 5 coordinates"),
    ("annotations.1.segmentation", [[0, 0, 20, 0]], "polygon 0 has 4 coordinates"),
    ("annotations.1.segmentation", [["x", 0, 20, 0, 20, 20]], "polygon 0 is not a list of numbers"),
    ("annotations.1.segmentation", "zz", "segmentation is a str"),
    ("annotations.2.segmentation.counts", "garbage!!", "RLE counts are not a run-length encoding of 48x64"),
    ("annotations.2.segmentation.counts", "0", "RLE counts are not"),  # pycocotools decodes both as junk
    ("annotations.2.segmentation.counts", [5, -3], "RLE counts are not"),
    ("annotations.2.segmentation.counts", [5, 200], "RLE counts are not"),
    ("annotations.2.segmentation.size", [10, 10], "its RLE is 10x10 (height x width) but its image is 48x64"),
    ("annotations.2.segmentation.size", "big", "its RLE has no [height, width] size"),
]


@pytest.mark.parametrize(("path", "value", "said"), BAD_COCO)
def test_malformed_coco_is_one_line_naming_the_entry(coco_root, path, value, said):
    from doge.augmentation.inputs import read_dataset
    from doge.errors import DogeError

    annotations = coco_root / "instances.json"
    annotations.write_text(json.dumps(set_path(coco_doc(), path, value)))
    with pytest.raises(DogeError) as err:
        read_dataset(coco_root, annotations=annotations)
    message = str(err.value)
    assert said in message and str(annotations) in message and "\n" not in message, message


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b'{"images": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nests its JSON too deeply"),
        ('{"images": [{"id": 1, "file_name": "é.png"}]}'.encode("latin-1"), "is not UTF-8 text"),
        (b'{"images": [}', "is not JSON (line 1, column 13"),
    ],
)
def test_coco_bytes_that_are_not_utf8_json_are_one_line(coco_root, data, said):
    from doge.augmentation.inputs import read_dataset
    from doge.errors import DogeError

    (coco_root / "instances.json").write_bytes(data)
    with pytest.raises(DogeError, match=re.escape(said)):
        read_dataset(coco_root, annotations=coco_root / "instances.json")


def test_a_well_formed_coco_with_a_bom_and_real_rle_still_reads(coco_root):
    from pycocotools import mask as mu

    from doge.augmentation.inputs import read_dataset

    doc = coco_doc()
    mask = np.zeros((48, 64), np.uint8)
    mask[5:30, 10:50] = 1
    encoded = mu.encode(np.asfortranarray(mask))
    doc["annotations"][2]["segmentation"] = {"size": [48, 64], "counts": encoded["counts"].decode()}
    doc["annotations"][0]["bbox"] = [-20, 40, 500, 500]  # outside the image: clipped, not refused
    (coco_root / "instances.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(doc).encode())
    dataset = read_dataset(coco_root, annotations=coco_root / "instances.json")
    assert [len(s.annotations) for s in dataset.sources] == [3] and dataset.classes == ["cat"]


BAD_METADATA = [
    ("metadata.jsonl", b'{"file_name": "a.png", "label": "x"}\n[1, 2]\n', "line 2 is not an object"),
    ("metadata.jsonl", b'{"file_name": 5, "label": "x"}\n', "line 1 has no file_name"),
    ("metadata.jsonl", b'{"file_name": "a.png", "label": null}\n', "line 1 has no label (it holds None)"),
    ("metadata.jsonl", b'{"file_name": "a.png", "label": {"a": 1}}\n', "line 1 has no label"),
    (
        "metadata.jsonl",
        b'{"file_name": "a.png", "label": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
        "line 1 is not JSON",
    ),
    ("metadata.jsonl", '{"file_name": "a.png", "label": "café"}\n'.encode("latin-1"), "is not UTF-8 text"),
    ("metadata.csv", "file_name,label\na.png,café\n".encode("latin-1"), "is not UTF-8 text"),
    ("metadata.csv", b"file_name,label\na.png\n", "row 1 has no label (it holds None)"),
]


@pytest.mark.parametrize(("name", "data", "said"), BAD_METADATA)
def test_malformed_imagefolder_metadata_is_one_line_naming_the_row(coco_root, name, data, said):
    from doge.augmentation.inputs import read_dataset
    from doge.errors import DogeError

    (coco_root / name).write_bytes(data)
    with pytest.raises(DogeError) as err:
        read_dataset(coco_root)
    assert said in str(err.value) and str(coco_root / name) in str(err.value), str(err.value)


MUTABLE = [
    "images.0.id", "images.0.file_name", "images.0.width", "images.0.height", "categories.0.id",
    "categories.0.name", "annotations.0.image_id", "annotations.0.category_id", "annotations.0.bbox",
    "annotations.0.area", "annotations.1.segmentation", "annotations.1.segmentation.0",
    "annotations.1.segmentation.0.3", "annotations.2.segmentation.counts", "annotations.2.segmentation.size",
    "annotations.2.segmentation.counts.1", "annotations.1", "categories", "annotations",
]  # fmt: skip


def test_any_mutation_of_a_coco_file_is_read_and_mapped_or_one_line(tmp_path_factory):
    """Whatever one value of a COCO file becomes, reading it is a dataset or one DogeError line, and
    an accepted file's annotations map through every fit without another exception."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from doge.augmentation.inputs import read_dataset
    from doge.augmentation.mapping import map_annotation
    from doge.errors import DogeError
    from doge.rendering.geometry import fit_geometry

    root = tmp_path_factory.mktemp("fuzz")
    Image.new("RGB", (64, 48), "grey").save(root / "a.png")
    values = st.recursive(
        st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats() | st.text(max_size=12),
        lambda inner: st.lists(inner, max_size=8) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=12,
    )

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(path=st.sampled_from(MUTABLE), value=values | st.just(DELETE))
    def check(path, value):
        annotations = root / "instances.json"
        annotations.write_text(json.dumps(set_path(coco_doc(), path, value)))
        try:
            dataset = read_dataset(root, annotations=annotations)
        except DogeError as exc:
            assert "\n" not in str(exc) and len(str(exc)) < 400, str(exc)
            return
        for fit in ("keep", "crop", "pad"):
            geometry = fit_geometry(64, 48, 64, fit)
            for ann in dataset.sources[0].annotations:
                mapped = map_annotation(ann, geometry)
                assert mapped is None or len(mapped["bbox"]) == 4

    check()


# -- augment --masks: label images of another shape ---------------------------------------------


def mask_set(tmp_path, mask_size, exif_orientation=None):
    images, masks = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    masks.mkdir()
    photo = Image.new("RGB", (64, 48), "grey")
    if exif_orientation:
        exif = photo.getexif()
        exif[0x0112] = exif_orientation
        photo.save(images / "a.jpg", exif=exif)
    else:
        photo.save(images / "a.jpg")
    Image.fromarray(np.full(mask_size[::-1], 3, np.uint16)).save(masks / "a.png")  # I;16 labels
    return images, masks


@pytest.mark.parametrize(
    ("mask_size", "orientation", "ok"),
    [
        ((64, 48), None, True),
        ((32, 24), None, True),  # a scaled copy
        ((33, 24), None, True),  # ... with a pixel of rounding
        ((48, 64), None, False),  # transposed: once stretched silently over the source
        ((48, 64), 6, True),  # the source is EXIF-rotated: upright it is 48 x 64
        ((64, 48), 6, False),
        ((64, 64), None, False),
    ],
)
def test_a_label_image_of_another_shape_is_refused_before_rendering(tmp_path, mask_size, orientation, ok):
    from doge.augmentation.inputs import read_dataset
    from doge.errors import DogeError

    images, masks = mask_set(tmp_path, mask_size, orientation)
    if ok:
        assert read_dataset(images, masks=masks).sources[0].mask == masks / "a.png"
        return
    with pytest.raises(DogeError, match=r"label image .*a\.png is \d+x\d+ but its source .*a\.jpg is") as err:
        read_dataset(images, masks=masks)
    assert "own shape" in str(err.value)


def test_a_label_image_that_is_not_an_image_is_refused_before_rendering(tmp_path):
    from doge.augmentation.inputs import read_dataset
    from doge.errors import DogeError

    images, masks = mask_set(tmp_path, (64, 48))
    (masks / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n half written")
    with pytest.raises(DogeError, match="is not an image PIL can read: replace it"):
        read_dataset(images, masks=masks)


@pytest.mark.parametrize(("orientation", "ok"), [(None, True), (6, False), (1, True)])
def test_coco_image_of_another_size_upright_than_declared_is_refused(coco_root, orientation, ok):
    # once: an EXIF-rotated JPEG declared 64x48 was laid out as 48x64, every box on the wrong pixels
    from doge.augmentation.inputs import read_dataset
    from doge.errors import DogeError

    doc = coco_doc()
    photo = Image.new("RGB", (64, 48), "grey")
    exif = photo.getexif()
    if orientation:
        exif[0x0112] = orientation
    photo.save(coco_root / "a.jpg", exif=exif)
    doc["images"][0]["file_name"] = "a.jpg"
    (coco_root / "instances.json").write_text(json.dumps(doc))
    if ok:
        assert read_dataset(coco_root, annotations=coco_root / "instances.json").sources[0].rel == "a.jpg"
        return
    with pytest.raises(DogeError, match=r"declared 64x48 but the file is 48x64 upright"):
        read_dataset(coco_root, annotations=coco_root / "instances.json")
