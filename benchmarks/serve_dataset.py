"""`doge serve --dataset` at scale: a dataset page over 100,000 generated images.

A synthetic augment OUT folder in the imagefolder layout (what `doge augment` writes:
``metadata.jsonl`` with doge's columns, ``doge-run.json``, class folders): 100,000 rows over 10
classes and 2 gaps with target scores, every image a hard link to a 256 x 256 PNG (the page
reads each shown image's header; the files' content does not matter: one picture a class). Each request goes through
the Starlette application in-process (route, filtering, Jinja2 rendering; no network). The first
request reads the folder back (the index), later ones page it from memory.

    .venv/bin/python benchmarks/serve_dataset.py [--images 100000] [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, print_table


def synthetic_run(out: Path, images: int, classes: int = 10) -> None:
    from PIL import Image

    rng = random.Random(0)
    out.mkdir(parents=True)
    labels = [f"class{i:02d}" for i in range(classes)]
    for label in labels:  # one picture a class: a file system allows some 65,000 links to one file
        (out / label).mkdir()
        Image.effect_noise((256, 256), 64).convert("RGB").save(out.parent / f"{label}.png")
    rows = []
    for i in range(images):
        label = labels[i % classes]
        gap = ("real->painting@v1:1", "real->sketch@v2:1")[i % 2]
        name = f"{label}/img_{i:06d}_0.png"
        os.link(out.parent / f"{label}.png", out / name)
        rows.append(
            {
                "file_name": name,
                "label": label,
                "doge_generated": True,
                "doge_id": f"{gap.split(':')[0].replace('->', '=')}/images/img_{i:06d}_0.png",
                "doge_source": f"/data/src/{label}/img_{i:06d}.jpg",
                "doge_gaps": gap,
                "doge_edit_weight": 1.5,
                "doge_k": 0,
                "doge_seed": rng.getrandbits(63),
                "doge_target_score": round(rng.random(), 4),
                "doge_source_similarity": round(rng.random(), 4),
            }
        )
    (out / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    per_class = images // classes
    run = {
        "format": "imagefolder",
        "label_column": "label",
        "class_names": labels,
        "classes": {
            label: {"sources": per_class, "asked": per_class, "made": per_class, "rejected": 0, "short": 0}
            for label in labels
        },
        "gaps": ["real->painting@v1", "real->sketch@v2"],
    }
    (out / "doge-run.json").write_text(json.dumps(run))


def measure(client, url: str, runs: int, vary=None) -> tuple[float, float, int]:
    start = time.perf_counter()
    first = client.get(url)
    first_ms = (time.perf_counter() - start) * 1000
    assert first.status_code == 200, (url, first.status_code, first.text[:300])
    times = []
    for i in range(runs):
        target = vary(i) if vary else url
        start = time.perf_counter()
        got = client.get(target)
        times.append((time.perf_counter() - start) * 1000)
        assert got.status_code == 200, (target, got.status_code)
    return first_ms, statistics.median(times), len(first.content) // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    from starlette.testclient import TestClient

    from doge.registry import Registry
    from doge.serve.app import create_app

    with tempfile.TemporaryDirectory(prefix="doge-bench-dataset-") as tmp:
        out = Path(tmp) / "aug"
        start = time.perf_counter()
        synthetic_run(out, args.images)
        made_s = time.perf_counter() - start
        client = TestClient(create_app(Registry(home=Path(tmp) / "home"), datasets=[out]), base_url="http://127.0.0.1")
        rows = []
        pages = max(1, args.images // 48)
        cases = [
            ("dataset page 1 (first: reads the folder back)", "/datasets/aug", lambda i: f"/datasets/aug?page={i + 2}"),
            ("dataset page N (a different page each time)", f"/datasets/aug?page={pages // 2}", None),
            ("class filter", "/datasets/aug?class=class03", lambda i: f"/datasets/aug?class=class03&page={i + 1}"),
            ("class + gap + score range", "/datasets/aug?class=class03&gap=real->sketch@v2:1&min=0.2&max=0.6", None),
            ("status = unreviewed", "/datasets/aug?status=unreviewed&page=3", None),
            ("/api/datasets/aug (JSON page)", "/api/datasets/aug?page=7", None),
        ]
        for label, url, vary in cases:
            first, median, kib = measure(client, url, args.runs, vary)
            rows.append([label, round(first), round(median), kib])
        record = client.get("/api/datasets/aug").json()["records"][0]
        thumb = f"/datasets/aug/thumbs/{record['index']}"
        first, median, kib = measure(client, thumb, args.runs)
        rows.append(["thumbnail (first makes it, then cached by sha)", round(first), round(median), kib])
    print(f"{machine()}; {args.images} images made in {made_s:.1f} s")
    print_table(f"doge serve --dataset over {args.images:,} images", ["request", "first ms", "median ms", "KiB"], rows)


if __name__ == "__main__":
    main()
