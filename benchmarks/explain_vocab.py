"""`doge gap explain`'s vocabulary: embedding it once, then reading it from the cache, and ranking.

On the tiny model (a 2-layer, 32-wide CLIP text tower), so the figures measure doge's own work
(tokenising, batching, the safetensors cache) rather than a real tower's forward passes; a real
ViT-H/14 text tower costs far more per word on a CPU, which is what the cache saves.

    .venv/bin/python benchmarks/explain_vocab.py
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, print_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--words", type=int, nargs="+", default=[1000, 10000], help="Vocabulary sizes to measure.")
    args = parser.parse_args()

    import torch

    from doge.data.text import build_text_encoder
    from doge.gaps.explain import embed_vocabulary, rank_words, vocabulary
    from doge.testing import build_tiny_unclip

    work = Path(tempfile.mkdtemp(prefix="doge-bench-explain-"))
    try:
        model = build_tiny_unclip(work / "tiny")
        tower = build_text_encoder({"plugin": "clip", "model": str(model), "dim": 32})
        rows = []
        for n in args.words:
            words = vocabulary(n)
            home = work / f"home-{n}"
            start = time.perf_counter()
            embeddings = embed_vocabulary(tower, words, home=home)
            first = time.perf_counter() - start
            start = time.perf_counter()
            cached = embed_vocabulary(tower, words, home=home)
            again = time.perf_counter() - start
            start = time.perf_counter()
            rank_words(torch.randn(32), cached, words, top=20)
            ranking = time.perf_counter() - start
            size = sum(p.stat().st_size for p in (home / "cache" / "text-embeddings").iterdir())
            assert torch.equal(embeddings, cached)
            rows.append([len(words), first, len(words) / first, again, ranking, size / 1e6])
        print(f"machine: {machine()}")
        print_table(
            "Vocabulary embedding (tiny text tower)",
            ["words + phrases", "first run s", "words/s", "cached s", "ranking s", "cache MB"],
            rows,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
