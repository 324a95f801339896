"""The public Python API: what the CLI calls, and what a notebook user calls directly."""

from __future__ import annotations

import logging
from pathlib import Path

from doge import pluginmanager
from doge.errors import DogeError
from doge.gap import Gap
from doge.names import validate_name

log = logging.getLogger("doge")


def registry_for(registry=None, home=None, url=None):
    """The registry a call names: the one given, else the one at ``home`` / ``url`` (or their defaults)."""
    if registry is not None:
        return registry
    from doge.registry import Registry

    return Registry(home=home, url=url)


def load_gap(ref: str, *, registry=None, home=None, url=None) -> Gap:
    """Load one gap version (``name``, ``name@v2``, ``name@prod``) with its vector sha-checked."""
    reg = registry_for(registry, home, url)
    record = reg.resolve(ref)
    tensors = dict(reg.load_tensors(record))
    return Gap.from_record(record, tensors.pop("gap"), tensors)


def build_encoder(encoder: str = "clip", model: str | None = None, device: str | None = None, dtype: str | None = None):
    cls = pluginmanager.get("encoders", encoder)
    return cls(model=model, device=device, dtype=dtype)


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
    from doge.encoding import encode_images
    from doge.images import discover
    from doge.provenance import gap_provenance

    # Everything a user can get wrong is checked before a model loads.
    validate_name(name)
    estimate = pluginmanager.get("estimators", estimator)
    src_set = discover(src, limit=src_limit, seed=seed)
    tgt_set = discover(tgt, limit=tgt_limit, seed=seed)
    reg = registry_for(registry, home, url)

    enc = build_encoder(encoder, model=model, device=device)
    src_emb = encode_images(enc, src_set, batch_size=batch_size, workers=workers, progress=progress, desc="source")
    tgt_emb = encode_images(enc, tgt_set, batch_size=batch_size, workers=workers, progress=progress, desc="target")
    vector, params, *rest = estimate(src_emb, tgt_emb, **(estimator_params or {}))
    extras = {k: v.float().cpu().numpy() for k, v in (rest[0] if rest else {}).items()}  # e.g. coral's transform
    if not bool(vector.isfinite().all()):
        raise DogeError(f"estimator {estimator!r} gave a non-finite gap; check the images or try --estimator mean")
    provenance = gap_provenance(
        encoder=enc.describe(), estimator=estimator, params=params, src=src_emb, tgt=tgt_emb,
        src_limit=src_limit, tgt_limit=tgt_limit, seed=seed, description=description,
    )
    record = reg.create(name, vector.float().cpu().numpy(), provenance, description=description, extras=extras)
    log.info("stored %s (sha256 %s)", record.ref, record.sha256[:12])
    return Gap.from_record(record, vector.float().cpu().numpy(), extras)


def render(*args, **kwargs):
    """Render source images shifted by gaps; see :func:`doge.rendering.render`."""
    from doge.rendering import render as _render

    return _render(*args, **kwargs)
