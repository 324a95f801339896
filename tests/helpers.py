"""Helpers that several test modules import (``from helpers import race``); fixtures live in conftest."""

import contextlib
import json
import multiprocessing as mp
import os
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


def make_gap_home(home: Path, tiny_model, domains, estimators=("mean",)) -> Path:
    """A registry in ``home`` holding real->painting@v1, @v2, ... (one per estimator) made with the tiny model."""
    from doge.api import create_gap

    for estimator in estimators:
        create_gap(
            "real->painting",
            domains["real"],
            domains["painting"],
            model=str(tiny_model),
            estimator=estimator,
            home=home,
            progress=False,
            workers=0,
        )
    return home


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
