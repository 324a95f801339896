"""Sources and outputs on an object store (moto's S3 server on loopback): render and gap create
read s3:// folders in place, render writes each object once under its final key, manifest last."""

import io
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import render_cli, upload, write_class_folders
from PIL import Image

from doge import storage
from doge.cli.main import get_cli
from doge.errors import DogeError

JOB = ["--gap", "real->painting", "--limit", "3", "-n", "2", "--batch-size", "4"]


@pytest.fixture(scope="module")
def home(gap_home):
    return gap_home


def keys(client, bucket: str, prefix: str = "") -> list[str]:
    found = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in found)


def s3_pixels(client, bucket: str, prefix: str) -> dict[str, np.ndarray]:
    out = {}
    for key in keys(client, bucket, f"{prefix}/images/"):
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        out[key.rsplit("/", 1)[-1]] = np.asarray(Image.open(io.BytesIO(body)))
    return out


def s3_lines(client, bucket: str, key: str) -> list[dict]:
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return [json.loads(line) for line in body.splitlines()]


@pytest.fixture
def render(home, tiny_model, net):
    def invoke(src, out, *args, ok=True):
        return render_cli(home, tiny_model, src, out, "--controlnet", net, *JOB, *args, ok=ok)

    return invoke


def test_a_render_from_and_to_s3_makes_the_local_runs_images(render, bucket, domains, tmp_path):
    url, client, name = bucket
    upload(client, name, domains["real"], "real")
    render(domains["real"], tmp_path / "local")
    render(f"{url}/real", f"{url}/out")
    local = {p.name: np.asarray(Image.open(p)) for p in sorted((tmp_path / "local" / "images").iterdir())}
    remote = s3_pixels(client, name, "out")
    assert sorted(local) == sorted(remote) and len(local) == 6
    for key in local:
        assert np.abs(local[key].astype(int) - remote[key].astype(int)).max() <= 1, key
    entries = s3_lines(client, name, "out/manifest.jsonl")
    assert sorted(e["image"] for e in entries) == sorted(f"images/{k}" for k in local)
    assert all(e["source"].startswith(f"{url}/real/") for e in entries)
    # nothing half-written lies about: no temp objects, no probe left behind
    assert not [k for k in keys(client, name, "out/") if ".part" in k or ".doge-write-test" in k]


def test_a_killed_s3_run_resumes_to_the_same_result(render, bucket, domains, monkeypatch):
    """The manifest object is put after the images it lists; a run that dies after writing an image
    but before listing it leaves an object the rerun overwrites with the same bytes."""
    url, client, name = bucket
    upload(client, name, domains["real"], "real")
    render(f"{url}/real", f"{url}/whole")
    whole = s3_pixels(client, name, "whole")

    from doge.rendering import manifest

    real_append, calls = manifest.append, []

    def dies_on_second_commit(path, entries):
        if entries:
            calls.append(len(entries))
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed between the images and their manifest lines
        real_append(path, entries)

    monkeypatch.setattr(manifest, "append", dies_on_second_commit)
    render(f"{url}/real", f"{url}/out", ok=False)
    listed = s3_lines(client, name, "out/manifest.jsonl")
    assert 0 < len(listed) < 6
    stored = set(keys(client, name, "out/images/"))
    assert all(f"out/{e['image']}" in stored for e in listed)  # never lists a missing object
    monkeypatch.setattr(manifest, "append", real_append)
    render(f"{url}/real", f"{url}/out")
    entries = s3_lines(client, name, "out/manifest.jsonl")
    assert sorted(e["image"] for e in entries) == sorted(set(e["image"] for e in entries))  # each once
    again = s3_pixels(client, name, "out")
    assert sorted(again) == sorted(whole)
    for key in whole:
        assert np.abs(again[key].astype(int) - whole[key].astype(int)).max() <= 1, key


def test_a_bucket_that_cannot_be_written_fails_before_rendering(render, bucket, domains, s3_endpoint, monkeypatch):
    url, client, name = bucket
    upload(client, name, domains["real"], "real")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")  # moto checks nothing; a missing bucket it does
    result = render(f"{url}/real", "s3://no-such-bucket-here/out", ok=False)
    assert result.exit_code != 0
    line = result.output.strip().splitlines()[-1]
    assert "s3://no-such-bucket-here/out" in line and "Traceback" not in result.output
    assert "wrong" not in result.output


def test_an_unreadable_url_is_one_line_naming_it_without_its_password(s3_endpoint):
    with pytest.raises(DogeError) as caught:
        storage.list_files(storage.location("s3://no-such-bucket-x/real"))
    assert "s3://no-such-bucket-x/real" in str(caught.value)
    assert storage.shown("s3://user:hunter2@bucket/x?token=abc") == "s3://user:***@bucket/x?token=***"


@pytest.fixture
def fresh_s3fs():
    """fsspec keeps one S3 filesystem per set of options: a test that changes the AWS settings
    needs a new one (and leaves none behind that holds its settings)."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    yield
    s3fs.S3FileSystem.clear_instance_cache()


def test_missing_credentials_name_what_to_set(tmp_path, monkeypatch, fresh_s3fs):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: fails fast
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(DogeError) as caught:
        storage.check_writable(storage.location("s3://bucket/out"))
    message = str(caught.value)
    assert "s3://bucket/out" in message and "AWS_ACCESS_KEY_ID" in message
    assert "\n" not in message


@pytest.mark.parametrize("key", ["../escape.jpg", "a/../../b.jpg", "/abs.jpg", "a\\b.jpg"])
def test_object_keys_that_leave_the_folder_are_refused(key):
    root = storage.location("s3://bucket/data")
    with pytest.raises(DogeError, match="fix or remove that entry"):
        storage.child(root, key, "metadata.jsonl line 1")


def test_gap_create_from_s3_gives_the_local_gap_and_records_the_url(bucket, domains, tiny_model, tmp_path):
    from doge.api import create_gap

    url, client, name = bucket
    upload(client, name, domains["real"], "real")
    upload(client, name, domains["painting"], "painting")
    options = dict(model=str(tiny_model), progress=False)
    local = create_gap("a->b", domains["real"], domains["painting"], home=tmp_path / "h1", workers=0, **options)
    # DataLoader workers forked from a process that has used S3 read with their own filesystem
    remote = create_gap("a->b", f"{url}/real", f"{url}/painting", home=tmp_path / "h2", workers=2, **options)
    assert np.allclose(np.asarray(local.vector), np.asarray(remote.vector), atol=1e-6)
    source = remote.provenance["source"]
    assert source["folder"] == f"{url}/real"
    assert source["digest"] == local.provenance["source"]["digest"]  # the same bytes, wherever they lie
    assert "testing" not in json.dumps(remote.provenance)


def test_local_paths_and_file_urls_stay_local(tmp_path):
    assert storage.location(f"file://{tmp_path}") == tmp_path
    assert not storage.is_remote(storage.location(str(tmp_path)))
    assert storage.is_remote(storage.location("s3://bucket/x"))
    assert os.fspath(storage.location("~")) == os.path.expanduser("~")


# -- doge augment ------------------------------------------------------------------------------


@pytest.fixture
def augment(home, tiny_model):
    import doge

    def invoke(src, out, **options):
        fast = dict(size=64, steps=2, progress=False, controls=["none"])
        return doge.augment(src, ["real->painting"], out, model=str(tiny_model), home=home, **{**fast, **options})

    return invoke


def s3_rows(client, bucket: str, key: str) -> list[dict]:
    return s3_lines(client, bucket, key)


def test_augment_class_folders_from_and_to_s3_matches_a_local_run(augment, bucket, domains, tmp_path):
    url, client, name = bucket
    train = write_class_folders(tmp_path / "train", domains, count=4)
    upload(client, name, train, "train")
    local = augment(train, tmp_path / "aug", per_class=3)
    remote = augment(f"{url}/train", f"{url}/aug", per_class=3)
    assert remote["generated"] == local["generated"] == 6
    assert remote["out"] == f"{url}/aug" and remote["src"] == f"{url}/train"
    rows = s3_rows(client, name, "aug/metadata.jsonl")
    local_rows = [json.loads(line) for line in (tmp_path / "aug" / "metadata.jsonl").read_text().splitlines()]
    assert [(r["file_name"], r["label"]) for r in rows] == [(r["file_name"], r["label"]) for r in local_rows]
    stored = set(keys(client, name, "aug/"))
    for row in rows:
        assert f"aug/{row['file_name']}" in stored  # the metadata lists only objects that are there
        assert row["doge_source"].startswith(f"{url}/train/")
        body = client.get_object(Bucket=name, Key=f"aug/{row['file_name']}")["Body"].read()
        theirs = np.asarray(Image.open(io.BytesIO(body))).astype(int)
        ours = np.asarray(Image.open(tmp_path / "aug" / row["file_name"])).astype(int)
        assert np.abs(theirs - ours).max() <= 1
    assert "aug/README.md" in stored


def test_augment_coco_and_masks_read_from_s3(augment, bucket, domains, tmp_path):
    url, client, name = bucket
    root = tmp_path / "coco"
    (root / "labels").mkdir(parents=True)
    images, anns = [], []
    for i, f in enumerate(sorted(domains["real"].iterdir())[:2]):
        Image.open(f).convert("RGB").resize((96, 64)).save(root / f"{i:06d}.jpg")
        Image.fromarray(np.full((64, 96), 7, np.uint8)).save(root / "labels" / f"{i:06d}.png")
        images.append({"id": 10 + i, "file_name": f"{i:06d}.jpg", "width": 96, "height": 64})
        anns.append({"id": i + 1, "image_id": 10 + i, "category_id": 1, "bbox": [12, 6, 30, 20], "iscrowd": 0})
    doc = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "car"}]}
    (root / "instances.json").write_text(json.dumps(doc))
    upload(client, name, root, "coco")
    summary = augment(
        f"{url}/coco",
        f"{url}/out",
        annotations=f"{url}/coco/instances.json",
        masks=f"{url}/coco/labels",
        output_format="coco",
        ratio=1,
    )
    assert summary["input"] == "coco" and summary["generated"] == 2
    written = json.loads(client.get_object(Bucket=name, Key="out/annotations.json")["Body"].read())
    stored = set(keys(client, name, "out/"))
    assert all(f"out/{image['file_name']}" in stored for image in written["images"])
    local = augment(
        root,
        tmp_path / "local",
        annotations=root / "instances.json",
        masks=root / "labels",
        output_format="coco",
        ratio=1,
    )
    assert local["generated"] == 2
    mine = json.loads((tmp_path / "local" / "annotations.json").read_text())
    assert [a["bbox"] for a in written["annotations"]] == [a["bbox"] for a in mine["annotations"]]  # as a local run
    assert len([k for k in stored if k.startswith("out/masks/")]) == 2


def test_a_name_in_remote_metadata_that_leaves_the_dataset_is_refused(augment, bucket, domains):
    url, client, name = bucket
    first = sorted(domains["real"].iterdir())[0]
    client.put_object(Bucket=name, Key="set/a.png", Body=first.read_bytes())
    client.put_object(Bucket=name, Key="secret.png", Body=first.read_bytes())
    rows = [{"file_name": "a.png", "label": "x"}, {"file_name": "../secret.png", "label": "x"}]
    client.put_object(Bucket=name, Key="set/metadata.jsonl", Body="".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DogeError, match=r"'\.\./secret\.png', which climbs out"):
        augment(f"{url}/set", f"{url}/out", per_class=1, dry_run=True)


def test_filter_and_grids_work_on_an_s3_output_with_s3_references(render, home, tiny_model, bucket, domains):
    url, client, name = bucket
    upload(client, name, domains["real"], "real")
    upload(client, name, domains["painting"], "painting")
    render(f"{url}/real", f"{url}/out", "--grid")
    assert "out/grid/grid_000.png" in keys(client, name, "out/grid/")
    argv = ["--home", str(home), "--quiet", "filter", f"{url}/out", "--src", f"{url}/real", "--tgt", f"{url}/painting"]
    argv += ["--min-source-similarity", "-1", "--json"]
    result = CliRunner().invoke(get_cli(), argv)
    assert result.exit_code == 0, result.output
    entries = s3_lines(client, name, "out/manifest.jsonl")
    assert len(entries) == 6 and all("target_score" in e["filter"] for e in entries)
    assert all(e["filter"]["source_similarity"] is not None for e in entries)  # sources re-read from S3


def test_parquet_and_webdataset_outputs_on_s3(augment, bucket, domains, tmp_path):
    url, client, name = bucket
    train = write_class_folders(tmp_path / "train", domains, count=2, cats=1)
    augment(train, f"{url}/pq", per_class=1, output_format="parquet")
    assert [k for k in keys(client, name, "pq/") if k.endswith(".parquet")] == ["pq/data/train-00000-of-00001.parquet"]
    augment(train, f"{url}/wds", per_class=1, output_format="webdataset", shard_size=1)
    assert len([k for k in keys(client, name, "wds/") if k.endswith(".tar")]) == 2


def test_augment_into_a_bucket_that_cannot_be_written_fails_before_rendering(augment, s3_endpoint, domains, tmp_path):
    train = tmp_path / "train"
    (train / "cat").mkdir(parents=True)
    first = sorted(domains["real"].iterdir())[0]
    (train / "cat" / first.name).write_bytes(first.read_bytes())
    with pytest.raises(DogeError, match="cannot write to s3://no-such-bucket-aug/out"):
        augment(train, "s3://no-such-bucket-aug/out", per_class=1, work=tmp_path / "work")
    assert not (tmp_path / "work").exists()  # nothing rendered
