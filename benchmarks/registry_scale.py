"""Registry at scale: create, resolve and list with 10,000 gap versions, on SQLite and PostgreSQL.

Everything goes through the Registry's public API (create, resolve, list): each create writes a
real 1024-wide float32 safetensors blob (fsynced, atomically) and its row in one transaction,
as `doge gap create` does.

    .venv/bin/python benchmarks/registry_scale.py                       # SQLite, and PostgreSQL if configured
    .venv/bin/python benchmarks/registry_scale.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python benchmarks/registry_scale.py --listing-only      # rows inserted in bulk, then `doge gap list`

``--listing-only`` skips the creates: it inserts the rows (no blobs) in one transaction and times
what `doge gap list` does in-process (query, rows, output), as the CLI runs it.

PostgreSQL: the URL comes from --postgres, DOGE_BENCH_POSTGRES_URL or DOGE_TEST_POSTGRES_URL.
The benchmark makes its own database on that server (``doge_bench``, dropped and made afresh),
so the database named in the URL, which tests may be using, is left alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, print_table

BENCH_DATABASE = "doge_bench"
DIM = 1024


def main() -> None:
    args = _parse()
    import numpy as np

    backends = [] if args.skip_sqlite else [("SQLite", None)]
    postgres = args.postgres or os.environ.get("DOGE_BENCH_POSTGRES_URL") or os.environ.get("DOGE_TEST_POSTGRES_URL")
    if postgres:
        backends.append(("PostgreSQL", _fresh_database(postgres)))
    else:
        print("no PostgreSQL URL (--postgres, DOGE_BENCH_POSTGRES_URL or DOGE_TEST_POSTGRES_URL): SQLite only")
    print(f"machine: {machine()}")
    print(f"{args.versions} versions over {args.names} names, {DIM}-wide float32 vectors")
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.names, DIM)).astype(np.float32)
    rows = []
    for label, url in backends:
        home = Path(tempfile.mkdtemp(prefix="doge-bench-registry-"))
        try:
            if not args.listing_only:
                rows += _bench(label, home, url, args, vectors, rng)
            rows += _bench_listing(label, home / "listing", url, args)
        finally:
            shutil.rmtree(home, ignore_errors=True)
    if not rows:
        return
    print_table(
        f"Registry with {args.versions} versions",
        ["backend", "operation", "count", "seconds", "per second", "median ms", "p99 ms"],
        rows,
    )


def _parse():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--names", type=int, default=100, help="Gap names the versions are spread over.")
    parser.add_argument("--resolves", type=int, default=2_000)
    parser.add_argument("--postgres", help="SQLAlchemy URL of a PostgreSQL server to benchmark on.")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument(
        "--listing-only", action="store_true", help="Only time `doge gap list` over bulk-inserted rows."
    )
    parser.add_argument(
        "--repeats", type=int, default=10, help="Runs of each listing (the best and the median are shown)."
    )
    return parser.parse_args()


def _fresh_database(url: str) -> str:
    """Make an empty database ``doge_bench`` on the server of ``url`` and return its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = make_url(url)
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {BENCH_DATABASE}"))
        connection.execute(text(f"CREATE DATABASE {BENCH_DATABASE}"))
    engine.dispose()
    return server.set(database=BENCH_DATABASE).render_as_string(hide_password=False)


def _bench(label: str, home: Path, url: str | None, args, vectors, rng) -> list[list]:
    from doge.registry import Registry

    registry = Registry(home=home, url=url)
    provenance = {
        "encoder": {"plugin": "clip", "model": "stabilityai/stable-diffusion-2-1-unclip", "dim": DIM},
        "estimator": {"name": "mean", "params": {}},
        "source": {"folder": "data/real", "images": 24},
        "target": {"folder": "data/painting", "images": 24},
    }
    create_ms = []
    start = time.perf_counter()
    for i in range(args.versions):
        began = time.perf_counter()
        # A name's versions differ: the blob store keeps one file per distinct vector.
        registry.create(f"gap-{i % args.names:03d}", vectors[i % args.names] + i, provenance)
        create_ms.append((time.perf_counter() - began) * 1000)
        if (i + 1) % 1000 == 0:
            print(f"{label}: {i + 1} created, {time.perf_counter() - start:.0f} s", flush=True)
    create_s = time.perf_counter() - start
    chunk = min(1000, args.versions // 2)
    first, last = create_ms[:chunk], create_ms[-chunk:]

    per_name = args.versions // args.names
    refs = []
    for j in range(args.resolves):
        name = f"gap-{int(rng.integers(args.names)):03d}"
        refs.append(name if j % 2 else f"{name}@v{int(rng.integers(1, per_name + 1))}")
    resolve_ms = []
    for ref in refs:
        began = time.perf_counter()
        registry.resolve(ref)
        resolve_ms.append((time.perf_counter() - began) * 1000)

    list_all_ms = _timed(lambda: registry.list(), 5)
    listed = len(registry.list())
    one = f"gap-{args.names // 2:03d}"
    list_one_ms = _timed(lambda: registry.list(one), 50)
    registry.close()
    assert listed == args.versions, f"list() gave {listed} versions, expected {args.versions}"
    return [
        [label, "create (all)", args.versions, create_s, args.versions / create_s, _median(create_ms), _p99(create_ms)],
        [
            label,
            f"create (first {chunk})",
            chunk,
            sum(first) / 1000,
            1000 * chunk / sum(first),
            _median(first),
            _p99(first),
        ],
        [label, f"create (last {chunk})", chunk, sum(last) / 1000, 1000 * chunk / sum(last), _median(last), _p99(last)],
        [
            label,
            "resolve (latest / @vN)",
            len(refs),
            sum(resolve_ms) / 1000,
            1000 * len(refs) / sum(resolve_ms),
            _median(resolve_ms),
            _p99(resolve_ms),
        ],
        [
            label,
            f"list() of all {listed}",
            len(list_all_ms),
            sum(list_all_ms) / 1000,
            1000 / _median(list_all_ms),
            _median(list_all_ms),
            max(list_all_ms),
        ],
        [
            label,
            f"list(name) ({per_name} versions)",
            len(list_one_ms),
            sum(list_one_ms) / 1000,
            1000 / _median(list_one_ms),
            _median(list_one_ms),
            _p99(list_one_ms),
        ],
    ]


def _bench_listing(label: str, home: Path, url: str | None, args) -> list[list]:
    """`doge gap list` (table, --all, --json) and Registry.list() over ``args.versions`` rows."""
    from click.testing import CliRunner
    from sqlalchemy import text

    from doge.cli.main import get_cli
    from doge.registry import Registry
    from doge.registry.models import GapName, GapRow
    from doge.registry.registry import _now

    registry = Registry(home=home, url=url)
    with registry._write_engine.begin() as conn:  # a fresh schema for the listing rows
        for table in ("gap_audit", "gap_labels", "gap_aliases", "gap_evaluations", "gap_versions", "gap_names"):
            conn.execute(text(f"DELETE FROM {table}"))
        provenance = json.dumps(_PROVENANCE, sort_keys=True)
        per_name = args.versions // args.names
        conn.execute(
            GapName.__table__.insert(),
            [{"name": f"gap-{n:03d}", "next_version": per_name + 1} for n in range(args.names)],
        )
        now = _now()
        conn.execute(
            GapRow.__table__.insert(),
            [
                {
                    "name": f"gap-{i % args.names:03d}",
                    "version": i // args.names + 1,
                    "sha256": f"{i:064x}",
                    "dim": DIM,
                    "description": "",
                    "created_at": now,
                    "created_by": "bench",
                    "source": "created",
                    "provenance": provenance,
                }
                for i in range(args.versions)
            ],
        )
    cli, runner = get_cli(), CliRunner()
    options = ["--home", str(home)] + (["--registry", url] if url else [])
    rows = []
    for what, argv in [
        ("doge gap list (table, first 100)", ["gap", "list"]),
        (f"doge gap list --all (table, {args.versions})", ["gap", "list", "--all"]),
        (f"doge gap list --json ({args.versions})", ["gap", "list", "--json"]),
    ]:

        def run(argv=argv):
            result = runner.invoke(cli, [*options, *argv])
            assert result.exit_code == 0, result.output

        rows.append([label, what, *_wall_and_cpu(run, args.repeats)])
    rows.append([label, f"Registry.list() ({args.versions} GapVersions)", *_wall_and_cpu(registry.list, args.repeats)])
    registry.close()
    # CPU time is what the listing itself costs; wall time also holds waiting for a busy machine's cores
    print_table(
        f"Listing {args.versions} versions ({label})",
        ["backend", "operation", "runs", "best wall ms", "median wall ms", "best CPU ms", "median CPU ms"],
        rows,
    )
    return []


def _wall_and_cpu(call, repeats: int) -> list:
    wall, cpu = [], []
    for _ in range(repeats):
        began, began_cpu = time.perf_counter(), time.process_time()
        call()
        wall.append((time.perf_counter() - began) * 1000)
        cpu.append((time.process_time() - began_cpu) * 1000)
    return [repeats, min(wall), _median(wall), min(cpu), _median(cpu)]


_PROVENANCE = {  # what a created gap's provenance holds
    "encoder": {"plugin": "clip", "model": "stabilityai/stable-diffusion-2-1-unclip", "dim": DIM},
    "estimator": {"name": "mean", "params": {}},
    "source": {"folder": "data/real", "images": 24, "digest": "ab" * 32},
    "target": {"folder": "data/painting", "images": 24, "digest": "cd" * 32},
    "doge_version": "0.1.0",
}


def _timed(call, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return times


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


if __name__ == "__main__":
    main()
