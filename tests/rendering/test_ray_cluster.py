"""A real multi-node Ray run: a head and a worker node (separate raylets, each with its own object
store and temp folder) on this machine, sources and outputs on the local S3 server, no shared
folder. A worker node is killed mid-render; the run still makes every image once, its manifest
lists only objects that are there, and the images equal a local run's within 1/255. Augment then
runs on the cluster from and to S3 and gives the local augment's dataset."""

import io
import json
import os
import threading

import numpy as np
import pytest
from helpers import upload, write_class_folders
from PIL import Image

try:
    import ray
    from ray.cluster_utils import Cluster
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("Ray is not installed: pip install 'doge[ray]'", allow_module_level=True)

pytestmark = pytest.mark.slow

OPTIONS = dict(size=64, steps=2, progress=False)


@pytest.fixture(scope="module")
def home(gap_home):
    return gap_home


@pytest.fixture(scope="module")
def cluster(s3_endpoint):
    """A head (2 CPUs) and a worker node (1 CPU); the nodes inherit the AWS settings that point s3fs
    at the local S3 server, as a real cluster's nodes carry their own credentials."""
    if ray.is_initialized():
        ray.shutdown()
    # A node's death is noticed within about 2 s (Ray's default health checks take longer).
    fast = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500, "health_check_failure_threshold": 4}
    made = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False, "_system_config": fast}
    )
    try:
        made.add_node(num_cpus=1)
        made.wait_for_nodes()
        ray.init(address=made.address, log_to_driver=False, logging_level="WARNING")
        yield made
    finally:
        ray.shutdown()
        made.shutdown()


def get(client, bucket, key) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def keys(client, bucket, prefix) -> set[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def close(a: bytes, b: bytes) -> bool:
    x, y = (np.asarray(Image.open(io.BytesIO(d))).astype(int) for d in (a, b))
    return x.shape == y.shape and int(np.abs(x - y).max()) <= 1


def test_render_and_augment_on_a_two_node_cluster_from_and_to_s3(
    cluster, bucket, home, tiny_model, domains, tmp_path, monkeypatch
):
    import doge
    from doge.rendering import batch

    url, client, name = bucket
    upload(client, name, domains["real"], "real")
    render = dict(model=str(tiny_model), controls=["none"], limit=3, per_source=4, batch_size=2, **OPTIONS)
    local = doge.render(["real->painting"], domains["real"], tmp_path / "local", home=home, **render)
    assert len(local.written) == 12

    # Kill the worker node (its raylet, object store and actors) as the first batch lands.
    worker = next(node for node in cluster.worker_nodes)
    killed = threading.Event()
    shipped = batch.OutputWriter.write

    def write_then_kill(self, outputs):
        shipped(self, outputs)
        if any(o.entry for o in outputs) and not killed.is_set():
            killed.set()
            cluster.remove_node(worker, allow_graceful=False)

    monkeypatch.setattr(batch.OutputWriter, "write", write_then_kill)
    result = doge.render(["real->painting"], f"{url}/real", f"{url}/out", home=home, ray="auto", **render)
    assert killed.is_set()
    lines = [json.loads(line) for line in get(client, name, "out/manifest.jsonl").decode().splitlines()]
    images = [e["image"] for e in lines]
    assert (
        sorted(images)
        == sorted(set(images))
        == sorted(f"images/{p.name}" for p in (tmp_path / "local" / "images").iterdir())
    )
    assert sorted(result.written) == sorted(images)
    stored = keys(client, name, "out/")
    for entry in lines:
        assert f"out/{entry['image']}" in stored
        assert close(get(client, name, f"out/{entry['image']}"), (tmp_path / "local" / entry["image"]).read_bytes())
    monkeypatch.setattr(batch.OutputWriter, "write", shipped)

    # The cluster goes on with a new worker node; augment runs there from and to S3.
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    train = write_class_folders(tmp_path / "train", domains, count=4)
    upload(client, name, train, "train")
    augment = dict(model=str(tiny_model), controls=["none"], per_class=3, batch_size=2, **OPTIONS)
    mine = doge.augment(train, ["real->painting"], tmp_path / "aug", home=home, **augment)
    theirs = doge.augment(f"{url}/train", ["real->painting"], f"{url}/aug", home=home, ray="auto", **augment)
    assert theirs["generated"] == mine["generated"] == 6
    rows = [json.loads(line) for line in get(client, name, "aug/metadata.jsonl").decode().splitlines()]
    local_rows = [json.loads(line) for line in (tmp_path / "aug" / "metadata.jsonl").read_text().splitlines()]
    assert [r["file_name"] for r in rows] == [r["file_name"] for r in local_rows]
    for row in rows:
        assert close(get(client, name, f"aug/{row['file_name']}"), (tmp_path / "aug" / row["file_name"]).read_bytes())

    # gap create --ray: the cluster's actors encode the S3 sets and give the local run's gap
    upload(client, name, domains["painting"], "painting")
    gap = dict(model=str(tiny_model), progress=False, batch_size=2)
    here = doge.create_gap("r->p", domains["real"], domains["painting"], home=tmp_path / "h1", workers=0, **gap)
    there = doge.create_gap("r->p", f"{url}/real", f"{url}/painting", home=tmp_path / "h2", ray="auto", **gap)
    assert np.allclose(np.asarray(here.vector), np.asarray(there.vector), atol=1e-5)
    assert there.provenance["source"]["digest"] == here.provenance["source"]["digest"]
    assert there.provenance["source"]["images"] == here.provenance["source"]["images"]
