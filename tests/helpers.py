"""Helpers that several test modules import (``from helpers import race``); fixtures live in conftest."""

import contextlib
import json
import multiprocessing as mp
import os
import shutil
import socket
import struct
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from doge.cli.main import get_cli
from doge.locks import LOCK_NAME

POSTGRES_ENV = "DOGE_TEST_POSTGRES_URL"


def postgres_url() -> str:
    """The test PostgreSQL's URL; skips the test without one (fails it on CI, where it must run)."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {POSTGRES_ENV} is not: point it at the test PostgreSQL")
        pytest.skip(f"set {POSTGRES_ENV} to run the registry tests on PostgreSQL")
    return url


@contextmanager
def postgres_schema(url: str):
    """A fresh, empty PostgreSQL schema for one test, as the URL that makes it the search path.

    Each test gets its own, so tests on the shared database (other runs at the same time
    included) never see each other's tables; the schema is dropped afterwards.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    schema = f"doge_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


def make_gap_home(home: Path, tiny_model, domains, estimators=("mean",), name: str = "real->painting") -> Path:
    """A registry in ``home`` holding real->painting@v1, @v2, ... (one per estimator) made with the
    tiny model; ``name`` may hold ``{estimator}`` to give each estimator's gap a name of its own."""
    from doge.api import create_gap

    for estimator in estimators:
        create_gap(
            name.format(estimator=estimator),
            domains["real"],
            domains["painting"],
            model=str(tiny_model),
            estimator=estimator,
            home=home,
            progress=False,
            workers=0,
        )
    return home


# -- the tiny model at the tests' settings -------------------------------------------------

# 2 steps at 64 px without a ControlNet, no progress bars: what a test of doge's plumbing needs.
TINY_JOB = {"steps": 2, "size": 64, "controls": ["none"], "progress": False}


def render_tiny(gaps, src, out, tiny_model, **options):
    """``doge.render`` of ``gaps`` from ``src`` into ``out`` with the tiny model at ``TINY_JOB``'s
    settings; ``options`` add to them or replace them (give ``home`` or ``registry``)."""
    import doge

    return doge.render(list(gaps), src, out, model=str(tiny_model), **{**TINY_JOB, **options})


def augment_tiny(src, out, tiny_model, home, gaps=("real->painting",), **options):
    """``doge.augment`` of ``src`` into ``out`` with ``gaps`` from ``home``'s registry and the tiny
    model at ``TINY_JOB``'s settings; ``options`` add to them or replace them."""
    import doge

    return doge.augment(src, list(gaps), out, model=str(tiny_model), home=home, **{**TINY_JOB, **options})


def render_cli(home, tiny_model, src, out, *args, ok=True):
    """``doge --home HOME --quiet render --src SRC --out OUT --model TINY --size 64 --steps 2 ARGS``
    through click's test runner; asserts that it succeeded unless ``ok=False``."""
    return cli(home, "render", "--src", src, "--out", out, "--model", tiny_model, "--size", "64", "--steps", "2",
               *args, ok=ok)  # fmt: skip


# -- labelled datasets built from the real photographs (conftest's ``domains``) ------------------


def write_class_folders(root: Path, domains, count: int | None = None, cats: int = 2) -> Path:
    """The first ``count`` real photographs (all by default, sorted by name) as class folders in
    ``root``: the first ``cats`` of them under cat/, the others under dog/."""
    for i, f in enumerate(sorted(domains["real"].iterdir())[:count]):
        folder = root / ("cat" if i < cats else "dog")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, folder / f.name)
    return root


def coco_rle(mask: np.ndarray) -> dict:
    """``mask`` as a COCO RLE segmentation (counts as text, as in a JSON file)."""
    from pycocotools import mask as mu

    rle = mu.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(rle["size"]), "counts": rle["counts"].decode()}


def coco_mask() -> np.ndarray:
    """The mask of each image ``write_coco`` writes: rows 8..40, columns 30..90 of 64 x 96."""
    mask = np.zeros((64, 96), bool)
    mask[8:40, 30:90] = True
    return mask


def write_coco(root: Path, domains, n: int = 2, first_class: str = "car") -> Path:
    """A COCO dataset in ``root``: ``n`` real photographs as 96 x 64 JPEGs (000000.jpg, ...; image
    ids 10, 11, ...), each with a box of ``first_class`` (category 1) and a polygon and an RLE of
    ``coco_mask()`` of 'road' (category 2), in instances.json. At --size 64 the output is 64 x 64:
    with --fit keep, x scales by 2/3."""
    root.mkdir(parents=True)
    images, anns = [], []
    files = sorted(domains["real"].iterdir())
    mask = coco_mask()
    for i in range(n):
        Image.open(files[i % len(files)]).convert("RGB").resize((96, 64)).save(root / f"{i:06d}.jpg")
        images.append({"id": 10 + i, "file_name": f"{i:06d}.jpg", "width": 96, "height": 64})
        anns += [
            {"id": 3 * i + 1, "image_id": 10 + i, "category_id": 1, "bbox": [12, 6, 30, 20], "area": 600, "iscrowd": 0},
            {
                "id": 3 * i + 2,
                "image_id": 10 + i,
                "category_id": 2,
                "bbox": [0, 30, 48, 30],
                "segmentation": [[0, 30, 48, 30, 48, 60, 0, 60]],
                "area": 1440,
                "iscrowd": 0,
            },
            {
                "id": 3 * i + 3,
                "image_id": 10 + i,
                "category_id": 2,
                "bbox": [30, 8, 60, 32],
                "segmentation": coco_rle(mask),
                "area": int(mask.sum()),
                "iscrowd": 1,
            },
        ]
    categories = [{"id": 1, "name": first_class}, {"id": 2, "name": "road"}]
    (root / "instances.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": categories}))
    return root


# -- object stores (conftest's ``bucket``) ------------------------------------------------------


def upload(client, bucket: str, folder: Path, prefix: str) -> None:
    """Every file below ``folder`` into ``bucket`` under ``prefix``/, at its path relative to ``folder``."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            client.put_object(
                Bucket=bucket, Key=f"{prefix}/{path.relative_to(folder).as_posix()}", Body=path.read_bytes()
            )


# -- servers on loopback -----------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_in_thread(app):
    """``app`` (an ASGI app, say doge serve's) served by uvicorn in a thread on a loopback port; yields its URL."""
    import threading
    import time

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# -- output-folder locks ------------------------------------------------------------------


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_lock(folder: Path, **fields) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    record = {"host": socket.gethostname(), "command": "render", "since": "2026-11-29T10:00:00Z", **fields}
    lock = folder / LOCK_NAME
    lock.write_text(json.dumps(record))
    return lock


# -- reading a render's output -------------------------------------------------------------


def pixels(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)) for p in sorted((folder / "images").iterdir())}


def lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def lines_tolerant(out: Path) -> list[dict]:
    entries = []
    for line in (out / "manifest.jsonl").read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            entries.append(json.loads(line))
    return entries


# -- several processes at once -------------------------------------------------------------


def _racer(target, i, args, barrier, results):
    try:
        results.put((i, target(*args, barrier), None))
    except BaseException as e:  # reported to the parent, which fails the test with it
        results.put((i, None, f"{type(e).__name__}: {e}"))


def race(target, args_per_process: list[tuple]) -> list[tuple]:
    """Run ``target(*args, barrier)`` in one spawned process per args tuple, all at once.

    ``target`` waits on ``barrier`` where the processes should collide. Returns ``(i, result,
    error)`` per process, in the order they finished; an error is ``"Type: message"`` or None.
    """
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(len(args_per_process)), ctx.Queue()
    procs = [
        ctx.Process(target=_racer, args=(target, i, args, barrier, results)) for i, args in enumerate(args_per_process)
    ]
    try:
        for p in procs:
            p.start()
        return [results.get(timeout=120) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()


# The components of a Stable unCLIP img2img pipeline, as diffusers names them in model_index.json
UNCLIP_COMPONENTS = (
    "feature_extractor",
    "image_encoder",
    "image_normalizer",
    "image_noising_scheduler",
    "tokenizer",
    "text_encoder",
    "unet",
    "scheduler",
    "vae",
)


# -- registry and CLI tests: vectors, blob files, the CLI and its one-line errors ------------------


def vec(seed: int, dim: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


def blob_files(home) -> list[str]:
    root = home / "blobs"
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


def doge(*args, env=None):
    return CliRunner().invoke(get_cli(), [str(a) for a in args], env=env)


def cli(home, *args, ok=True):
    """``doge --home HOME --quiet ARGS``; asserts that it succeeded unless ``ok=False``."""
    result = doge("--home", home, "--quiet", *args)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def one_line_error(result, *words):
    """The command failed with one 'Error:' line holding ``words``, and no traceback."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def safetensors_bytes(metadata: dict, dim: int = 4) -> bytes:
    header = {"gap": {"dtype": "F32", "shape": [dim], "data_offsets": [0, 4 * dim]}, "__metadata__": metadata}
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + np.ones(dim, np.float32).tobytes()
