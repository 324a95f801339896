"""A hostile user's inputs to this round's features (render --fit, augment, serve): each once gave a
traceback, a hang or a wrong result; each now gives one line naming the fix, or skips what it must."""

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from doge.cli.main import get_cli

FAST = ["--size", "64", "--steps", "2"]


@pytest.fixture(scope="module")
def home(tmp_path_factory, tiny_model, domains):
    from doge.api import create_gap

    home = tmp_path_factory.mktemp("home")
    create_gap("real->painting", domains["real"], domains["painting"], model=str(tiny_model), home=home,
               progress=False, workers=0)  # fmt: skip
    return home


def doge(home, *argv):
    return CliRunner().invoke(get_cli(), ["--home", str(home), *[str(a) for a in argv]])


def test_keep_skips_a_thin_strip_with_one_line_and_renders_the_rest(home, tiny_model, tmp_path, caplog):
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(src / "photo.png")
    Image.new("RGB", (1, 400), "red").save(src / "strip.png")  # once a 64x25600 render under keep
    out = tmp_path / "out"
    result = doge(home, "--quiet", "render", "--gap", "real->painting", "--src", src, "--out", out,
                  "--model", tiny_model, "--control", "none", "--fit", "keep", *FAST)  # fmt: skip
    assert result.exit_code == 0, result.output
    warned = [r.getMessage() for r in caplog.records if "strip.png" in r.getMessage()]
    assert len(warned) == 1 and "--fit pad" in warned[0] and "1x400" in warned[0], warned
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [Image.open(out / line["image"]).size for line in lines] == [(64, 64)]
    assert [p.name for p in (out / "images").iterdir()] == ["photo_0.png"]


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


# -- doge serve: hostile queries ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/?page=99999999999999999999999", 200),  # once a 500 (SQLite OverflowError on the offset)
        ("/?page=-5", 200),
        ("/api/gaps/real-%3Epainting@v1/attachments/99999999999999999999999", 404),  # once a 500
        ("/api/gaps/real-%3Epainting@v1/attachments/0", 404),
    ],
)
def test_serve_answers_huge_numbers_without_a_server_error(home, url, status):
    from starlette.testclient import TestClient

    from doge.registry import Registry
    from doge.serve.app import create_app

    registry = Registry(home=home)
    try:
        response = TestClient(create_app(registry), base_url="http://127.0.0.1", raise_server_exceptions=False).get(url)
    finally:
        registry.close()
    assert response.status_code == status, response.text[:300]
    if url.startswith("/?"):  # a page past the end shows the last page, with the gap on it
        assert "real-&gt;painting" in response.text or "real->painting" in response.text
    else:
        assert "has no preview or plot" in response.json()["error"]


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


# -- numbers that are not numbers: nan and inf --------------------------------------------------


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--gap", "real->painting:nan"], "bad weight in 'real->painting:nan'"),
        (["--gap", "real->painting:-inf"], "bad weight in 'real->painting:-inf'"),
        (["--gap", "real->painting", "--edit-weight", "nan"], "--edit-weight nan: give a finite number"),
        (["--gap", "real->painting", "--edit-weight", "inf"], "--edit-weight inf: give a finite number"),
        (["--gap", "real->painting", "--guidance", "nan"], "--guidance nan: give a finite number"),
        (["--gap", "real->painting", "--controlnet-scale", "inf"], "--controlnet-scale inf: give a finite number"),
        (["--gap", "real->painting", "--lora-scale", "nan"], "--lora-scale nan: give a finite number"),
        (["--gap", "real->painting", "--sweep", "0:nan:3"], "--sweep '0:nan:3': write START:STOP:COUNT"),
    ],
)
def test_render_refuses_nan_and_inf_before_any_model_loads(
    home, tiny_model, domains, tmp_path, monkeypatch, args, said
):
    # each once rendered a folder of black images (NaN embeddings or guidance), exit status 0
    def no_model(*a, **k):
        pytest.fail("the model loaded before the numbers were checked")

    monkeypatch.setattr("doge.rendering.loading.load_pipeline", no_model)
    out = tmp_path / "out"
    result = doge(home, "--quiet", "render", *args, "--src", domains["real"], "--out", out, "--model", tiny_model,
                  "--control", "none", *FAST)  # fmt: skip
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: ") and said in line, result.output
    assert not (out / "images").exists() or not any((out / "images").iterdir())


@pytest.mark.parametrize(("args", "said"), [(["--ratio", "nan"], "--ratio nan"), (["--ratio", "inf"], "--ratio inf")])
def test_augment_refuses_a_nan_or_infinite_ratio(home, domains, tmp_path, args, said):
    result = doge(
        home, "augment", domains["real"], "--gap", "real->painting", "--out", tmp_path / "o", *args, "--dry-run"
    )
    assert (result.exit_code == 1 and result.exception is None) or isinstance(result.exception, SystemExit), (
        result.output
    )
    assert said in result.output and "give a finite number" in result.output, result.output


# -- an output folder inside the source folder ------------------------------------------------


@pytest.mark.parametrize("inside", [".", "out", "cat/out"])
def test_render_refuses_an_out_inside_src(home, tiny_model, tmp_path, monkeypatch, inside):
    # once: the rerun of the same command took the first run's images for sources of a class "out"
    monkeypatch.setattr("doge.rendering.loading.load_pipeline", lambda *a, **k: pytest.fail("model loaded"))
    src = tmp_path / "src dir"
    (src / "cat").mkdir(parents=True)
    Image.new("RGB", (64, 48), "grey").save(src / "cat" / "a.png")
    out = src / inside
    result = doge(home, "--quiet", "render", "--gap", "real->painting", "--src", src, "--out", out,
                  "--model", tiny_model, "--control", "none", *FAST)  # fmt: skip
    assert result.exit_code == 1, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: ") and "inside --src" in line and "outside" in line, result.output
    assert sorted(p.relative_to(src).as_posix() for p in src.rglob("*")) == ["cat", "cat/a.png"]


@pytest.mark.parametrize(("out", "work"), [("aug", None), ("../aug", "work")])
def test_augment_refuses_an_out_or_work_area_inside_src(home, tmp_path, out, work):
    src = tmp_path / "src"
    (src / "cat").mkdir(parents=True)
    Image.new("RGB", (64, 48), "grey").save(src / "cat" / "a.png")
    args = ["--work", src / work] if work else []
    result = doge(home, "augment", src, "--gap", "real->painting", "--out", src / out, "--count", "1", *args)
    assert result.exit_code == 1, result.output
    assert "inside" in result.output and "Traceback" not in result.output, result.output
    assert sorted(p.relative_to(src).as_posix() for p in src.rglob("*")) == ["cat", "cat/a.png"]


# -- budgets beyond reason ------------------------------------------------------------------------


def test_render_refuses_a_hundred_million_images_at_once(home, tiny_model, domains, tmp_path):
    # once: minutes and gigabytes of planning before the first image, then a hang
    result = doge(home, "--quiet", "render", "--gap", "real->painting", "--src", domains["real"], "--out",
                  tmp_path / "o", "--model", tiny_model, "--control", "none", "--count", "100000000", *FAST)  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "--count asks for 100000000 images; one run makes at most 1000000" in result.output


@pytest.mark.parametrize(("args", "said"), [(["--per-class", "10000000"], "--per-class asks for"),
                                            (["--ratio", "1e9"], "--ratio asks for")])  # fmt: skip
def test_augment_refuses_a_budget_beyond_a_million_images_even_dry(home, domains, tmp_path, args, said):
    result = doge(home, "augment", domains["real"], "--gap", "real->painting", "--out", tmp_path / "o", *args,
                  "--dry-run")  # fmt: skip
    assert result.exit_code == 1 and said in result.output and "split the work" in result.output, result.output


# -- gaps that are no gaps ------------------------------------------------------------------------


def versions(home, name):
    from doge.registry import Registry

    registry = Registry(home=home)
    try:
        return [v.version for v in registry.list(name)]
    finally:
        registry.close()


def test_a_gap_between_a_folder_and_itself_is_refused_and_nothing_stored(home, tiny_model, domains):
    # once stored as 'created same->same@v1 ... |gap| 0.0000': a gap that moves nothing
    result = doge(home, "--quiet", "gap", "create", "same->same", "--src", domains["real"], "--tgt", domains["real"],
                  "--model", tiny_model)  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "the gap is zero" in result.output and "same" in result.output.splitlines()[-1], result.output
    assert versions(home, "same->same") == []


@pytest.mark.parametrize(("src_text", "tgt_text"), [("", "a painting"), ("a photo", "   "), ("a photo", "a photo")])
def test_an_empty_or_identical_text_side_is_refused_and_nothing_stored(home, tiny_model, src_text, tgt_text):
    result = doge(home, "--quiet", "gap", "create", "photo->text", "--src-text", src_text, "--tgt-text", tgt_text,
                  "--model", tiny_model)  # fmt: skip
    assert result.exit_code == 1, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: ") and ("is empty" in line or "the gap is zero" in line), result.output
    assert versions(home, "photo->text") == []


# -- registry check: a folder where a blob should be ----------------------------------------------


def test_registry_check_reports_a_folder_in_place_of_a_blob_and_checks_the_rest(tmp_path):
    from doge.registry import Registry

    registry = Registry(home=tmp_path / "home")
    try:
        rng = np.random.default_rng(0)
        hit = registry.create("a->b", rng.standard_normal(8).astype(np.float32), {})
        fine = registry.create("c->d", rng.standard_normal(8).astype(np.float32), {})
        path = registry.blobs.path(hit.sha256)
        path.unlink()
        path.mkdir()  # once: 'Error: ...: Is a directory' and the check stopped there
        result = CliRunner().invoke(get_cli(), ["--home", str(tmp_path / "home"), "registry", "check", "--json"])
        assert result.exit_code == 1, result.output
        report = json.loads(result.output)
        assert [(p["ref"], p["kind"]) for p in report["problems"]] == [("a->b@v1", "unreadable-blob")]
        assert str(path) in report["problems"][0]["message"] and report["versions"] == 2
        shown = CliRunner().invoke(get_cli(), ["--home", str(tmp_path / "home"), "gap", "show", fine.ref])
        assert shown.exit_code == 0, shown.output
    finally:
        registry.close()


# -- doge serve: a port already taken -------------------------------------------------------------


def test_serve_on_a_taken_port_is_one_line_and_announces_nothing(home):
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        # once: 'doge serve: http://127.0.0.1:PORT/' printed as if serving, then uvicorn's ERROR, exit 3
        result = doge(home, "serve", "--port", port)
    finally:
        taken.close()
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{port} (address already in use): pick another --port or stop what holds it"
    ]


def test_serve_on_port_0_announces_the_port_it_got(home, monkeypatch):
    import uvicorn

    served = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: served.extend(sockets or []))
    result = doge(home, "serve", "--port", "0")
    assert result.exit_code == 0, result.output
    port = served[0].getsockname()[1]
    served[0].close()
    assert port > 0 and f"doge serve: http://127.0.0.1:{port}/ (read-only)" in result.output


# -- two sources, one output name ----------------------------------------------------------------


@pytest.mark.parametrize(("first", "second"), [("x/a.png", "x/a.jpg"), ("x__y/z.png", "x/y__z.png")])
def test_two_sources_that_would_share_output_names_are_refused(home, tiny_model, tmp_path, monkeypatch, first, second):
    # once: 2 sources, 1 image written, the other silently counted as "already there"
    monkeypatch.setattr("doge.rendering.loading.load_pipeline", lambda *a, **k: pytest.fail("model loaded"))
    src = tmp_path / "src"
    for i, rel in enumerate((first, second)):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48), (i * 80, 0, 0)).save(src / rel)
    result = doge(home, "--quiet", "render", "--gap", "real->painting", "--src", src, "--out", tmp_path / "out",
                  "--model", tiny_model, "--control", "none", *FAST)  # fmt: skip
    assert result.exit_code == 1, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: ") and first in line and second in line and "rename one" in line, result.output


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
