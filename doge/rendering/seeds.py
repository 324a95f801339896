"""Per-image seeds: derived from (run seed, source sha256, k), never from the order of work.

Batching, resuming or sharding a render therefore never changes an image.
"""

from __future__ import annotations

import hashlib


def image_seed(run_seed: int, source_sha256: str, k: int) -> int:
    digest = hashlib.sha256(f"doge/{run_seed}/{source_sha256}/{k}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF  # torch seeds are int64
