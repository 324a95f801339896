"""Where the data lives and how many nodes render it: images/s of the tiny model, local folders vs a
local S3 server, a local run vs a one-node and a two-node Ray cluster, and where a run's time goes.

Every run renders the same images through ``doge.render`` (the tiny model and its canny ControlNet):
from and to local folders, then from and to buckets on moto's S3 server on loopback (the server
the tests use; a real store adds its network latency per request). The Ray runs use
``ray.cluster_utils.Cluster``: separate raylets and object stores on this machine, no folder shared
with the driver for the S3 runs. A cluster is started before its runs are timed; a run's time
includes its actors' start (importing torch and loading the pipeline).

The breakdown times a local run's stages by wrapping the functions that do them: reading the
source bytes (``doge.storage.read_bytes``), decoding, the control maps, generation (the pipeline
call, CLIP embedding included), PNG encoding and writing (images and manifest).

    .venv/bin/python benchmarks/storage_ray.py
    .venv/bin/python benchmarks/storage_ray.py --sources 8 --per-source 2 --no-ray
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, print_table, tiny_canny_job


def main() -> None:
    args = _parse()
    logging.getLogger("doge").setLevel(logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="doge-bench-storage-"))
    job = tiny_canny_job(work, args.sources, args.per_source, args.size, args.steps)
    sources, images = job.sources, job.images
    options = {**job.options, "batch_size": args.batch_size, "progress": False}
    print(f"machine: {machine()}")
    print(job.describe(f"batch size {args.batch_size}"))
    with s3_server() as endpoint:
        bucket = upload(endpoint, sources)
        import doge

        doge.render(["real->bench"], sources, work / "warm-up", **{**options, "per_source": 1})  # imports, caches
        rows = []
        local = timed(lambda: doge.render(["real->bench"], sources, work / "out-local", **options))
        rows.append(["local", "local folders", images, local, images / local])
        remote = timed(lambda: doge.render(["real->bench"], f"{bucket}/src", f"{bucket}/out-local", **options))
        rows.append(["local", "S3 (moto, loopback)", images, remote, images / remote])
        if not args.no_ray:
            for nodes in (1, 2):
                for where, src, out in (
                    ("local folders", str(sources), str(work / f"out-ray{nodes}")),
                    ("S3 (moto, loopback)", f"{bucket}/src", f"{bucket}/out-ray{nodes}"),
                ):
                    seconds = on_cluster(nodes, args.cpus_per_node, src, out, options)
                    rows.append(
                        [f"Ray, {nodes} node(s) x {args.cpus_per_node} CPU", where, images, seconds, images / seconds]
                    )
        print_table(
            "doge render, tiny model: images per second",
            ["how", "sources and outputs", "images", "seconds", "img/s"],
            rows,
        )

        for where, src, out in (
            ("local folders", str(sources), str(work / "out-stages")),
            ("S3 (moto, loopback)", f"{bucket}/src", f"{bucket}/out-stages"),
        ):
            stages, total = breakdown(src, out, options)
            table = [[name, seconds, 100 * seconds / total, 1000 * seconds / images] for name, seconds in stages]
            print_table(
                f"Where a local run's time goes, {where} ({total:.2f} s for {images} images)",
                ["stage", "seconds", "% of run", "ms per image"],
                table,
            )
        put_ms = put_latency(bucket, 50)
        print(f"\none 1 MB PUT to the local S3 server, one at a time: {put_ms:.1f} ms (median of 50)")
    shutil.rmtree(work, ignore_errors=True)


def _parse():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=8)
    parser.add_argument("--per-source", type=int, default=2)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--cpus-per-node", type=int, default=1)
    parser.add_argument("--no-ray", action="store_true", help="Local runs and the breakdown only.")
    return parser.parse_args()


def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


@contextmanager
def s3_server():
    """moto's S3 server on a free loopback port, with the AWS settings s3fs (and Ray's nodes) read."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
    )
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def upload(endpoint: str, folder: Path) -> str:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=name)
    for path in sorted(folder.iterdir()):
        client.put_object(Bucket=name, Key=f"src/{path.name}", Body=path.read_bytes())
    return f"s3://{name}"


def on_cluster(nodes: int, cpus: int, src: str, out: str, options: dict) -> float:
    """Seconds of one render on a cluster of ``nodes`` nodes started beforehand (start not counted)."""
    import ray
    from ray.cluster_utils import Cluster

    import doge

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus, "include_dashboard": False})
    try:
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=cpus)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
        return timed(lambda: doge.render(["real->bench"], src, out, ray="auto", **options))
    finally:
        ray.shutdown()
        cluster.shutdown()


def breakdown(src: str, out: str, options: dict) -> tuple[list[tuple[str, float]], float]:
    """A local run with its stages timed (a stage's time excludes the stages it calls)."""
    import doge
    from doge import storage
    from doge.data import images
    from doge.rendering import batch, local

    spent: dict[str, float] = defaultdict(float)
    stack: list[str] = []
    saved = []

    def wrap(owner, attribute: str, stage: str) -> None:
        original = getattr(owner, attribute)

        def timed_call(*a, **k):
            start = time.perf_counter()
            stack.append(stage)
            try:
                return original(*a, **k)
            finally:
                stack.pop()
                elapsed = time.perf_counter() - start
                spent[stage] += elapsed
                if stack:
                    spent[stack[-1]] -= elapsed  # the caller's own time excludes this stage

        saved.append((owner, attribute, original))
        setattr(owner, attribute, timed_call)

    wrap(storage, "read_bytes", "read")
    wrap(images, "decode_image", "decode")
    wrap(local, "load_source", "controls")  # what load_source does besides reading and decoding
    wrap(batch, "_generate_batch", "generate (CLIP embedding + unCLIP + ControlNet)")
    wrap(batch, "png_bytes", "encode (PNG)")
    wrap(batch.OutputWriter, "write", "write (images + manifest)")
    try:
        total = timed(lambda: doge.render(["real->bench"], src, out, **options))
    finally:
        for owner, attribute, original in saved:
            setattr(owner, attribute, original)
    named = sum(spent.values())
    return [
        *sorted(spent.items(), key=lambda kv: -kv[1]),
        ("other (planning, model load, loops)", total - named),
    ], total


def put_latency(bucket: str, count: int) -> float:
    import statistics

    from doge import storage

    data = os.urandom(1 << 20)
    times = []
    for i in range(count):
        path = storage.location(f"{bucket}/latency/{i}.bin")
        start = time.perf_counter()
        storage.put(path, data)
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


if __name__ == "__main__":
    main()
