"""`doge serve` at scale: the library page and the API over 10,000 gap versions.

The registry is filled in bulk through the registry's own models (1,000 names x 10 versions, each
with two labels; an alias per name; an evaluation on every tenth version; a preview row on the
latest version of every name), then measured through the Starlette application in-process (the
route, its queries and the Jinja2 rendering; no network). The blobs are not written: the pages
measured here read rows only (a thumbnail is its own request).

    .venv/bin/python benchmarks/serve_library.py                 # SQLite
    .venv/bin/python benchmarks/serve_library.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test

PostgreSQL: the URL comes from --postgres or DOGE_TEST_POSTGRES_URL; the benchmark makes its own
database on that server (``doge_bench_serve``, dropped and made afresh).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, print_table

BENCH_DATABASE = "doge_bench_serve"
RUNS = 15


def fill(registry, names: int, per_name: int) -> None:
    from sqlalchemy.orm import Session

    from doge.registry import audit
    from doge.registry.models import AliasRow, AttachmentRow, EvaluationRow, GapName, GapRow, LabelRow

    now = datetime.now(timezone.utc)
    prov = json.dumps({"encoder": {"plugin": "clip", "dim": 1024}, "estimator": {"name": "mean", "params": {}}})
    with Session(registry._write_engine) as s, s.begin():
        s.add_all(GapName(name=f"domain{i:04d}->target", next_version=per_name + 1) for i in range(names))
        s.flush()
        rows = [
            GapRow(
                name=f"domain{i:04d}->target",
                version=v,
                sha256=f"{i:032x}{v:032x}",
                dim=1024,
                description=f"gap {i} take {v}: photos of domain {i}",
                created_at=now,
                created_by="bench@host",
                source="created",
                provenance=prov,
            )
            for i in range(names)
            for v in range(1, per_name + 1)
        ]
        s.add_all(rows)
        s.flush()
        for n, row in enumerate(rows):
            s.add(LabelRow(version_id=row.id, key="team", value=("vision", "graphics", "robotics")[n % 3]))
            s.add(LabelRow(version_id=row.id, key="dataset", value=f"set{n % 17}"))
            if row.version == per_name:
                s.add(AliasRow(name=row.name, alias="prod", version_id=row.id))
                s.add(
                    AttachmentRow(
                        version_id=row.id,
                        kind="preview",
                        sha256="f" * 64,
                        size=1,
                        created_at=now,
                        created_by="b",
                        settings="{}",
                    )
                )
            if n % 10 == 0:
                metrics = {
                    "gap": f"{row.name}@v{row.version}",
                    "transfer": {"accuracy_at_best": (n % 100) / 100, "best_weight": 1.5},
                }
                s.add(
                    EvaluationRow(
                        version_id=row.id, name=row.name, version=row.version, gap_sha256=row.sha256, created_at=now,
                        created_by="b", encoder="{}", metrics=json.dumps(metrics),
                    )
                )  # fmt: skip
        s.info.pop(audit.PENDING, None)


def timed(client, url: str) -> tuple[float, float, int]:
    """(first, median of RUNS) milliseconds, and the response's size."""
    start = time.perf_counter()
    r = client.get(url)
    first = (time.perf_counter() - start) * 1000
    assert r.status_code == 200, (url, r.status_code, r.text[:300])
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - start) * 1000)
    return first, statistics.median(times), len(r.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=1000)
    parser.add_argument("--per-name", type=int, default=10)
    parser.add_argument("--postgres", help="also measure on this PostgreSQL server")
    args = parser.parse_args()
    from starlette.testclient import TestClient

    from doge.registry import Registry
    from doge.serve.app import create_app

    backends = [("SQLite", None)]
    postgres = args.postgres or os.environ.get("DOGE_TEST_POSTGRES_URL")
    if postgres:
        backends.append(("PostgreSQL", _fresh_database(postgres)))
    print(f"machine: {machine()}")
    print(f"{args.names * args.per_name} versions over {args.names} names; median of {RUNS} requests after the first")
    table = []
    for label, url in backends:
        home = Path(tempfile.mkdtemp(prefix="doge-bench-serve-"))
        reg = Registry(home=home, url=url)
        start = time.perf_counter()
        fill(reg, args.names, args.per_name)
        print(f"{label}: filled in {time.perf_counter() - start:.1f} s")
        client = TestClient(create_app(reg))
        name = quote("domain0500->target", safe="")
        for what, path in [
            ("library page 1 (50 names)", "/"),
            ("library page 20", "/?page=20"),
            ("library, search 'domain05'", "/?search=domain05"),
            ("library, where team=vision", "/?where=team%3Dvision"),
            ("name page (10 versions)", f"/gaps/{name}"),
            ("version page", f"/gaps/{name}@v10"),
            ("/api/gaps (all versions)", "/api/gaps"),
        ]:
            first, median, size = timed(client, path)
            table.append([label, what, f"{first:.0f}", f"{median:.0f}", f"{size / 1024:.0f}"])
        reg.close()
    print_table("doge serve over 10,000 versions", ["backend", "request", "first ms", "median ms", "KiB"], table)


def _fresh_database(url: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {BENCH_DATABASE}"))
        conn.execute(text(f"CREATE DATABASE {BENCH_DATABASE}"))
    admin.dispose()
    return make_url(url).set(database=BENCH_DATABASE).render_as_string(hide_password=False)


if __name__ == "__main__":
    main()
