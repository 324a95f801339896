"""The provenance recorded with every gap version: encoder, estimator, both sides' folders, who, when."""

from __future__ import annotations

from typing import TYPE_CHECKING

import doge
from doge.clock import now_iso, who

if TYPE_CHECKING:
    from doge.data.embeddings import Embeddings


def side(emb: Embeddings, limit: int | None) -> dict:
    return {
        "folder": emb.folder,
        "images": len(emb),
        "skipped": emb.skipped,
        "classes": [c for c in emb.classes if c],
        "limit": limit,
        "digest": emb.digest,
    }


def gap_provenance(
    *,
    encoder: dict,
    estimator: str,
    params: dict,
    src: Embeddings,
    tgt: Embeddings,
    src_limit: int | None,
    tgt_limit: int | None,
    seed: int,
    description: str,
) -> dict:
    return {
        "encoder": encoder,
        "estimator": {"name": estimator, "params": params},
        "source": side(src, src_limit),
        "target": side(tgt, tgt_limit),
        "seed": seed,
        "created_at": now_iso(),
        "created_by": who(),
        "doge_version": doge.__version__,
        "description": description,
    }
