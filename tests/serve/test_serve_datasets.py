"""`doge serve --dataset OUT`: augment and render outputs in the library, labels drawn where augment
mapped them, filters and paging, thumbnails cached by sha, reviewers' marks that the next augment
honours, escaping of labels and file names, and no file outside a dataset's folders ever served."""

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from helpers import render_tiny, write_coco
from PIL import Image

pytest.importorskip("starlette")
from starlette.testclient import TestClient

TOKEN = "alice:s3cret-token"
FAST = {"steps": 2, "size": 64, "progress": False}
HOSTILE = '<script>alert("car")</script>'


def coco_source(root, domains):
    """Two 96 x 64 images (helpers.write_coco), each with a box of a hostile-named class and a polygon
    and an RLE of 'road'. At --size 64 with --fit keep the output is 64 x 64: x scales by 2/3, so the
    box [12, 6, 30, 20] lands at x 8, width 20."""
    return write_coco(root, domains, first_class=HOSTILE)


def expected_box(out, doge_id: str, box=(12, 6, 30, 20)) -> tuple:
    """Where the source box lands in the generated image: the box through the geometry its render
    recorded (doge.rendering.geometry, not serve's code), and the image's size."""
    from doge.augmentation.run import default_work
    from doge.rendering import manifest
    from doge.rendering.geometry import Geometry

    summary = json.loads((out / "doge-run.json").read_text())
    work = Path(summary["work_dir"]) if summary.get("work_dir") else default_work(out)
    slug, image = doge_id.split("/images/", 1)
    entry = manifest.read(work / slug / "manifest.jsonl")["images/" + image]
    geometry = Geometry.from_json(entry["geometry"])
    return tuple(round(v, 2) for v in geometry.map_box(box)), tuple(geometry.output_size)


def augment_coco(src, out, home, tiny_model, work=None, **options):
    import doge

    options = {"output_format": "coco", **options}
    return doge.augment(
        src,
        ["real->painting"],
        out,
        annotations=src / "instances.json",
        ratio=1,
        fit="keep",
        model=str(tiny_model),
        controls=["canny"],
        controlnets=[str(tiny_model / "controlnet")],
        home=home,
        work=work,
        **{**FAST, **options},
    )


@pytest.fixture(scope="module")
def coco_run(tmp_path_factory, gap_home, tiny_model, domains):
    base = tmp_path_factory.mktemp("coco-run")
    src = coco_source(base / "coco", domains)
    out = base / "aug"
    summary = augment_coco(src, out, gap_home, tiny_model)
    return {"src": src, "out": out, "home": gap_home, "summary": summary}


def client_for(app) -> TestClient:
    return TestClient(app, base_url="http://127.0.0.1")  # a loopback Host: what doge serve answers by default


def app_for(home, *datasets, writes=False, per_page=48, source_roots=()):
    from doge.registry import Registry
    from doge.serve.app import create_app
    from doge.serve.auth import parse_tokens

    tokens = parse_tokens(TOKEN) if writes else None
    return create_app(
        Registry(home=home),
        allow_writes=writes,
        tokens=tokens,
        datasets=list(datasets),
        source_roots=list(source_roots),
        dataset_per_page=per_page,
    )


def test_the_dataset_page_draws_each_box_where_augment_mapped_it(coco_run):
    client = client_for(app_for(coco_run["home"], coco_run["out"], source_roots=[coco_run["src"]]))
    listing = client.get("/datasets").text
    assert 'href="/datasets/aug"' in listing and "coco" in listing
    html = client.get("/datasets/aug").text
    cells = re.findall(r'<li class="cell[^"]*" data-id="([^"]+)" data-index="(\d+)">', html)
    assert len(cells) == 2 and all(key.startswith("real=painting/images/") for key, _ in cells)
    # Each image's box: the source box [12, 6, 30, 20] through the geometry its render recorded.
    for key, index in cells:
        (x, y, w, h), (width, height) = expected_box(coco_run["out"], key)
        cell = html.split(f'data-index="{index}">', 1)[1].split("</li>", 1)[0]
        assert f'viewBox="0 0 {width} {height}"' in cell
        drawn = re.findall(r'<rect class="box" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"', cell)
        assert any(tuple(float(v) for v in b) == pytest.approx((x, y, w, h), abs=0.01) for b in drawn), (drawn, x, y)
    assert html.count('class="polygon" points=') == 2
    assert html.count('class="overlay"') == 2  # the RLE masks, drawn by the server
    # Labels from the dataset are text, never markup.
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#34;car&#34;)&lt;/script&gt;" in html
    # The source and the control map, on demand, from inside the run's folders.
    index = cells[0][1]
    for what in ("source", "control-canny", "image"):
        assert f"/datasets/aug/files/{index}/{what}" in html or what == "image"
        got = client.get(f"/datasets/aug/files/{index}/{what}")
        assert got.status_code == 200 and got.headers["content-type"].startswith("image/"), (what, got.text)
    overlay = Image.open(__import__("io").BytesIO(client.get(f"/datasets/aug/overlays/{index}").content))
    assert overlay.size == expected_box(coco_run["out"], cells[0][0])[1] and overlay.getextrema()[3][1] > 0
    detail = client.get(f"/datasets/aug/images/{index}").text
    assert "control map" in detail and "polygon" in detail and "mask (RLE)" in detail


def test_filters_paging_summary_and_the_json_api(coco_run):
    client = client_for(app_for(coco_run["home"], coco_run["out"], per_page=1))
    first = client.get("/datasets/aug").text
    assert 'id="matching">2<' in first and 'page <span id="page">1</span> of 2' in first and 'id="next"' in first
    second = client.get("/datasets/aug", params={"page": 2}).text
    assert re.findall(r'data-index="(\d+)"', first) != re.findall(r'data-index="(\d+)"', second)
    assert 'id="matching">2<' in client.get("/datasets/aug", params={"class": HOSTILE}).text
    assert 'id="matching">0<' in client.get("/datasets/aug", params={"class": "bicycle"}).text
    assert 'id="matching">0<' in client.get("/datasets/aug", params={"status": "rejected"}).text
    assert 'id="matching">2<' in client.get("/datasets/aug", params={"gap": "real->painting@v1:1"}).text
    bad = client.get("/datasets/aug", params={"min": "lots"})
    assert bad.status_code == 400 and "give a number" in bad.text
    api = client.get("/api/datasets/aug").json()
    assert api["total"] == 2 and api["per_page"] == 1 and len(api["records"]) == 1
    summary = {s["class"]: s for s in api["summary"]}
    assert summary["road"]["asked"] == 2 and summary["road"]["made"] == 2 and summary["road"]["held"] == 2
    assert client.get("/datasets/nothing").status_code == 404


def test_thumbnails_are_made_once_and_keyed_by_the_images_sha(coco_run, tmp_path):
    import hashlib

    out = tmp_path / "copy"
    shutil.copytree(coco_run["out"], out)
    home = coco_run["home"]
    client = client_for(app_for(home, out))
    record = client.get("/api/datasets/copy").json()["records"][0]
    path = out / record["file"]
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    got = client.get(f"/datasets/copy/thumbs/{record['index']}")
    assert got.status_code == 200 and got.headers["etag"] == f'"{sha}"'
    cached = home / "cache" / "thumbnails" / sha[:2] / f"{sha}-256.jpg"
    assert cached.read_bytes() == got.content
    Image.new("RGB", (64, 64), "red").save(path)  # the image changes: its thumbnail does too
    again = client.get(f"/datasets/copy/thumbs/{record['index']}")
    assert again.headers["etag"] != got.headers["etag"] and Image.open(cached).size[0] > 0
    assert Image.open(__import__("io").BytesIO(again.content)).getpixel((5, 5))[0] > 200


def test_no_file_outside_the_dataset_is_served(tmp_path):
    """A metadata.jsonl is user input: '..', absolute paths and symlinks that leave OUT are refused."""
    secret = tmp_path / "secret.png"
    Image.new("RGB", (8, 8), "blue").save(secret)
    out = tmp_path / "out"
    (out / "cat").mkdir(parents=True)
    Image.new("RGB", (8, 8), "green").save(out / "cat" / "ok.png")
    os.symlink(secret, out / "cat" / "link.png")
    os.symlink(tmp_path, out / "cat" / "dir")
    names = ["cat/ok.png", "../secret.png", str(secret), "cat/link.png", "cat/dir/secret.png", "cat/../../secret.png"]
    rows = [
        {"file_name": name, "label": "<b>cat</b>", "doge_generated": True, "doge_source": str(secret), "doge_id": name}
        for name in names
    ]
    (out / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "doge-run.json").write_text(json.dumps({"format": "imagefolder", "src_root": str(out / "cat")}))
    client = client_for(app_for(tmp_path / "home", out))
    html = client.get("/datasets/out").text
    assert "<b>cat</b>" not in html and "&lt;b&gt;cat&lt;/b&gt;" in html
    secret_bytes = secret.read_bytes()
    for index, name in enumerate(names):
        for url in (f"/datasets/out/files/{index}/image", f"/datasets/out/thumbs/{index}"):
            got = client.get(url)
            if index == 0:
                assert got.status_code == 200
            else:
                assert got.status_code == 400 and "only files inside the root" in got.json()["error"], (name, url)
                assert got.content != secret_bytes
        # the source recorded in the metadata lies outside the run's source root: never served
        assert client.get(f"/datasets/out/files/{index}/source").status_code in (400, 404)
    assert client.get("/datasets/out/files/0/..%2F..%2Fsecret").status_code == 404


def _hostile_dataset(tmp_path, run: dict, rows: list[dict]) -> Path:
    out = tmp_path / "out"
    (out / "cat").mkdir(parents=True)
    Image.new("RGB", (8, 8), "green").save(out / "cat" / "ok.png")
    (out / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "doge-run.json").write_text(json.dumps({"format": "imagefolder", **run}))
    return out


def test_a_source_root_recorded_in_the_dataset_is_not_trusted(tmp_path):
    """doge-run.json is inside the dataset: its src_root ("/") widens nothing; a source is served only
    from OUT, its work area, or a folder the operator named with --source-root."""
    src = tmp_path / "src"
    src.mkdir()
    secret = src / "secret.png"
    Image.new("RGB", (8, 8), "blue").save(secret)
    row = {"file_name": "cat/ok.png", "label": "cat", "doge_generated": True, "doge_id": "cat/ok.png"}
    out = _hostile_dataset(tmp_path, {"src_root": "/"}, [{**row, "doge_source": str(secret).lstrip("/")}])
    client = client_for(app_for(tmp_path / "home", out))
    got = client.get("/datasets/out/files/0/source")
    assert got.status_code == 404 and got.content != secret.read_bytes()
    # "/" is not inside --source-root either: still refused when the operator named src
    client = client_for(app_for(tmp_path / "home", out, source_roots=[src]))
    assert client.get("/datasets/out/files/0/source").status_code == 404
    # a recorded src_root inside a folder the operator named: served
    (out / "doge-run.json").write_text(json.dumps({"format": "imagefolder", "src_root": str(src)}))
    (out / "metadata.jsonl").write_text(json.dumps({**row, "doge_source": "secret.png"}) + "\n")
    assert client_for(app_for(tmp_path / "home", out)).get("/datasets/out/files/0/source").status_code == 404
    got = client.get("/datasets/out/files/0/source")
    assert got.status_code == 200 and got.content == secret.read_bytes()


@pytest.mark.parametrize("hostile", ["work_dir", "id"])
def test_control_maps_resolve_inside_the_datasets_own_roots(tmp_path, hostile):
    """A work_dir from doge-run.json outside the dataset's roots, or a doge_id with '..', reaches no control map."""
    leak = tmp_path / "leak"
    (leak / "controls").mkdir(parents=True)
    Image.new("RGB", (8, 8), "blue").save(leak / "controls" / "a_canny.png")
    (tmp_path / ".out.doge-work").mkdir()
    if hostile == "work_dir":
        run, doge_id = {"work_dir": str(tmp_path)}, "leak/images/a_0.png"
    else:
        run, doge_id = {"work_dir": str(tmp_path / ".out.doge-work")}, "../leak/images/a_0.png"
    run["render"] = {"controls": [{"name": "canny"}]}
    row = {"file_name": "cat/ok.png", "label": "cat", "doge_generated": True, "doge_id": doge_id}
    out = _hostile_dataset(tmp_path, run, [row])
    client = client_for(app_for(tmp_path / "home", out))
    assert client.get("/datasets/out/files/0/control-canny").status_code == 404
    assert "control-canny" not in client.get("/datasets/out/images/0").text


def test_curation_bodies_are_bounded_and_flat(tmp_path):
    """The curation routes read a body through serve's guard: too deep or too large is a 400, not a 500."""
    from doge.serve.guard import MAX_BODY_BYTES

    row = {"file_name": "cat/ok.png", "label": "cat", "doge_generated": True, "doge_id": "cat/ok.png"}
    out = _hostile_dataset(tmp_path, {}, [row])
    client = TestClient(app_for(tmp_path / "home", out, writes=True), base_url="http://127.0.0.1")
    auth = {"Authorization": "Bearer s3cret-token", "Content-Type": "application/json"}
    deep = "[" * 30_000 + "]" * 30_000
    got = client.post("/api/datasets/out/curation", content=deep, headers=auth)
    assert got.status_code == 400 and "levels deep" in got.json()["error"]
    big = "token=wrong&" + "id=" + "x" * (MAX_BODY_BYTES + 10)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    got = client.post("/datasets/out/curation", content=big, headers=form)
    assert got.status_code == 400 and "larger than" in got.text
    assert not (out / "doge-curation.json").exists()


def test_a_render_folder_is_served_read_only(tmp_path, gap_home, tiny_model, domains):
    from doge.registry import Registry

    out = tmp_path / "render"
    render_tiny(["real->painting"], domains["real"], out, tiny_model, count=2, registry=Registry(home=gap_home))
    client = client_for(app_for(gap_home, out, writes=True))
    api = client.get("/api/datasets/render").json()
    assert api["kind"] == "render" and api["total"] == len(list((out / "images").glob("*.png"))) > 0
    record = api["records"][0]
    assert client.get(f"/datasets/render/thumbs/{record['index']}").status_code == 200
    refused = client.post(
        "/api/datasets/render/curation",
        json={"rejected": [record["id"]]},
        headers={"Authorization": "Bearer s3cret-token"},
    )
    assert refused.status_code == 400 and "render folder" in refused.json()["error"]


def test_a_rejection_drops_the_image_from_the_next_run_and_refills(tmp_path, gap_home, tiny_model, domains):
    from doge.registry import Registry

    src = coco_source(tmp_path / "coco", domains)
    out, work = tmp_path / "aug", tmp_path / "work"
    first = augment_coco(src, out, gap_home, tiny_model, work=work)
    assert first["generated"] == 2 and first["curation"]["rejected_by_people"] == 0
    app = app_for(gap_home, out, writes=True)
    client = client_for(app)
    records = client.get("/api/datasets/aug").json()["records"]
    victim = records[0]
    # writes need the token; an unknown id is refused and stores nothing
    assert client.post("/api/datasets/aug/curation", json={"rejected": [victim["id"]]}).status_code == 401
    token = {"Authorization": "Bearer s3cret-token"}
    read_only = client_for(app_for(gap_home, out, writes=False))
    refused = read_only.post("/api/datasets/aug/curation", json={"rejected": [victim["id"]]}, headers=token)
    assert refused.status_code == 403 and "--allow-writes" in refused.json()["error"]
    bad = client.post(
        "/api/datasets/aug/curation", json={"rejected": ["nope"]}, headers={"Authorization": "Bearer s3cret-token"}
    )
    assert bad.status_code == 404 and not (out / "doge-curation.json").exists()
    # the page's form (no script): ticked ids, a verdict, the token
    posted = client.post(
        "/datasets/aug/curation",
        data={"id": [victim["id"]], "verdict": "rejected", "token": "s3cret-token", "back": "page=1"},
        follow_redirects=False,
    )
    assert posted.status_code == 303 and posted.headers["location"].startswith("/datasets/aug?")
    marks = json.loads((out / "doge-curation.json").read_text())["images"]
    assert marks[victim["id"]]["verdict"] == "rejected" and marks[victim["id"]]["by"] == "alice"
    html = client.get("/datasets/aug", params={"status": "rejected"}).text
    assert 'id="matching">1<' in html

    second = augment_coco(src, out, gap_home, tiny_model, work=work)
    coco = json.loads((out / "annotations.json").read_text())
    names = [image["file_name"] for image in coco["images"]]
    assert victim["file"] not in names and not (out / victim["file"]).exists()
    assert len(names) == 2 and second["generated"] == 2 and second["written"] == 1  # refilled with a new seed
    assert {image["doge_k"] for image in coco["images"]} == {0, 1}
    assert second["curation"]["rejected_by_people"] == 1
    card = (out / "README.md").read_text()
    assert "rejected by people" in card and "| road | 2 | 2 | 2 | 0 | 1 | 0 |" in card
    # the run is recorded on its gap version: the version page links the served dataset
    reg = Registry(home=gap_home)
    recorded = [a for a in reg.attachments("real->painting@v1", kind="dataset") if a["settings"]["out"] == str(out)]
    assert len(recorded) == 1 and recorded[0]["settings"]["rejected_by_people"] == 1
    version = client.get("/gaps/real-%3Epainting@v1").text
    assert 'href="/datasets/aug"' in version


@pytest.mark.parametrize("fmt", ["parquet", "webdataset"])
def test_parquet_and_webdataset_outputs_are_shown_with_their_labels(fmt, tmp_path, gap_home, tiny_model, domains):
    src = coco_source(tmp_path / "coco", domains)
    out = tmp_path / "aug"
    augment_coco(src, out, gap_home, tiny_model, output_format=fmt)
    client = client_for(app_for(gap_home, out))
    api = client.get("/api/datasets/aug").json()
    assert api["kind"] == fmt and api["total"] == 2
    for record in api["records"]:
        assert record["label"] == "road" and (record["w"], record["h"]) == expected_box(out, record["id"])[1]
        if fmt == "parquet":  # the COCO objects travel in the rows: the box lands where augment mapped it
            box = expected_box(out, record["id"])[0]
            drawn = [(b["x"], b["y"], b["w"], b["h"]) for b in record["boxes"]]
            assert any(d == pytest.approx(box, abs=0.01) for d in drawn) and HOSTILE in record["labels"]
        thumb = client.get(f"/datasets/aug/thumbs/{record['index']}")
        image = client.get(f"/datasets/aug/files/{record['index']}/image")
        assert thumb.status_code == 200 and image.status_code == 200
        assert Image.open(__import__("io").BytesIO(image.content)).size == (record["w"], record["h"])
    assert list(out.glob("contact-sheet-road-*.png"))


@pytest.mark.parametrize("output_format", ["imagefolder", "webdataset", "parquet"])
def test_label_images_are_drawn_in_every_format_and_never_listed_as_images(
    tmp_path, gap_home, tiny_model, domains, output_format
):
    import io

    import numpy as np
    from helpers import augment_tiny

    src, masks = tmp_path / "seg" / "images", tmp_path / "seg" / "labels"
    src.mkdir(parents=True)
    masks.mkdir()
    for i, f in enumerate(sorted(domains["real"].iterdir())[:2]):
        Image.open(f).convert("RGB").resize((64, 64)).save(src / f.name)
        label = np.zeros((64, 64), np.uint8)
        label[: 16 * (i + 1), :] = 7  # a band of class 7 on top, as tall as 16 px times the source's number
        Image.fromarray(label).save(masks / f.name)
    out = tmp_path / f"seg-{output_format}"
    augment_tiny(src, out, tiny_model, gap_home, masks=masks, per_class=2, output_format=output_format)
    client = client_for(app_for(gap_home, out))
    records = client.get(f"/api/datasets/{out.name}").json()["records"]
    # two new images a class, one class: a WebDataset's .mask.png members are no images of their own
    assert len(records) == 2 and all(r["overlay"] for r in records), records
    from doge.augmentation.readback import read_output

    assert len(read_output(out).records) == 2
    for r in records:
        mask = client.get(f"/datasets/{out.name}/files/{r['index']}/mask")
        assert mask.status_code == 200, mask.text
        values = np.asarray(Image.open(io.BytesIO(mask.content)))
        assert set(np.unique(values)) == {0, 7} and values[0].all() and not values[-1].any()
        layer = client.get(f"/datasets/{out.name}/overlays/{r['index']}")
        assert layer.status_code == 200
        alpha = np.asarray(Image.open(io.BytesIO(layer.content)))[..., 3]
        assert alpha[0].all() and not alpha[-1].any()  # the band is drawn where the label image has it


def _coco_copy(coco_run, tmp_path, run_changes: dict | None = None) -> Path:
    out = tmp_path / "aug"
    shutil.copytree(coco_run["out"], out)
    if run_changes:
        run = json.loads((out / "doge-run.json").read_text())
        (out / "doge-run.json").write_text(json.dumps({**run, **run_changes}))
    return out


def _get_within(client, url: str, seconds: float = 20.0):
    import threading

    answer: list = []
    thread = threading.Thread(target=lambda: answer.append(client.get(url)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert answer, f"{url} did not answer within {seconds} s"
    return answer[0]


def test_the_run_summary_cannot_name_a_file_outside_the_dataset(coco_run, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"images": [{"id": 1, "file_name": "SECRET-FILE-NAME", "width": 8, "height": 8}]}))
    for named in (str(secret), "../secret.json", "/dev/zero"):
        out = _coco_copy(coco_run, tmp_path / named.replace("/", "_"), {"annotations_name": named})
        got = _get_within(client_for(app_for(coco_run["home"], out)), f"/datasets/{out.name}")
        assert got.status_code == 400 and "SECRET" not in got.text, (named, got.text[:300])


def test_a_fifo_in_a_dataset_is_refused_not_waited_on(coco_run, tmp_path):
    out = _coco_copy(coco_run, tmp_path)
    (out / "annotations.json").unlink()
    os.mkfifo(out / "annotations.json")
    got = _get_within(client_for(app_for(coco_run["home"], out)), "/datasets/aug")
    assert got.status_code == 400 and "not a regular file" in got.text


@pytest.mark.parametrize(
    "tamper",
    [
        lambda out: (out / "annotations.json").write_text(
            json.dumps({**json.loads((out / "annotations.json").read_text()), "annotations": 5})
        ),
        lambda out: (out / "annotations.json").write_text(
            json.dumps(
                {**json.loads((out / "annotations.json").read_text()), "images": [{"id": [1], "file_name": "x"}]}
            )
        ),
        lambda out: (out / "doge-run.json").write_text(
            json.dumps({**json.loads((out / "doge-run.json").read_text()), "render": "not an object"})
        ),
    ],
)
def test_one_damaged_dataset_leaves_the_others_and_the_index_served(coco_run, tmp_path, tamper):
    good = _coco_copy(coco_run, tmp_path / "good")
    bad = _coco_copy(coco_run, tmp_path / "bad")
    tamper(bad)
    client = client_for(app_for(coco_run["home"], good, bad))
    names = {d["name"]: d for d in client.get("/api/datasets").json()}
    assert names["aug"].get("error") is None and len(names) == 2
    assert client.get("/datasets").status_code == 200
    damaged = next(d for name, d in names.items() if name != "aug")
    page = client.get(f"/datasets/{damaged['name']}")
    assert page.status_code in (200, 400) and page.status_code != 500
