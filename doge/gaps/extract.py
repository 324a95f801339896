"""Making a gap from two folders of images: discover, encode, estimate, store."""

from __future__ import annotations

import logging
from pathlib import Path

from doge import pluginmanager
from doge.data.encoder import build_encoder
from doge.data.encoding import encode_images
from doge.data.images import discover
from doge.errors import DogeError
from doge.gaps.gap import Gap
from doge.gaps.store import registry_for
from doge.names import validate_name
from doge.provenance import gap_provenance

log = logging.getLogger("doge")


def create_gap(
    name: str,
    src: str | Path,
    tgt: str | Path,
    *,
    model: str | None = None,
    encoder: str = "clip",
    estimator: str = "mean",
    estimator_params: dict | None = None,
    src_limit: int | None = None,
    tgt_limit: int | None = None,
    seed: int = 0,
    batch_size: int = 32,
    workers: int | None = None,
    device: str | None = None,
    description: str = "",
    progress: bool = True,
    registry=None,
    home=None,
    url=None,
) -> Gap:
    """Encode both folders, estimate the gap, and store it as the next version of ``name``."""
    # Everything a user can get wrong is checked before a model loads.
    validate_name(name)
    estimate = pluginmanager.get("estimators", estimator)
    estimator_params = pluginmanager.check_options("estimators", estimator, estimator_params)
    src_set = discover(src, limit=src_limit, seed=seed)
    tgt_set = discover(tgt, limit=tgt_limit, seed=seed)
    reg = registry_for(registry, home, url)

    enc = build_encoder(encoder, model=model, device=device)
    src_emb = encode_images(enc, src_set, batch_size=batch_size, workers=workers, progress=progress, desc="source")
    tgt_emb = encode_images(enc, tgt_set, batch_size=batch_size, workers=workers, progress=progress, desc="target")
    vector, params, *rest = estimate(src_emb, tgt_emb, **estimator_params)
    extras = {k: v.float().cpu().numpy() for k, v in (rest[0] if rest else {}).items()}  # e.g. coral's transform
    if not bool(vector.isfinite().all()):
        raise DogeError(f"estimator {estimator!r} gave a non-finite gap; check the images or try --estimator mean")
    provenance = gap_provenance(
        encoder=enc.describe(),
        estimator=estimator,
        params=params,
        src=src_emb,
        tgt=tgt_emb,
        src_limit=src_limit,
        tgt_limit=tgt_limit,
        seed=seed,
        description=description,
    )
    record = reg.create(name, vector.float().cpu().numpy(), provenance, description=description, extras=extras)
    log.info("stored %s (sha256 %s)", record.ref, record.sha256[:12])
    return Gap.from_record(record, vector.float().cpu().numpy(), extras)
