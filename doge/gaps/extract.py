"""Making a gap from two folders of images (discover, encode, estimate, store), or from text."""

from __future__ import annotations

import logging
from pathlib import Path

import doge
from doge import pluginmanager
from doge.clock import now_iso, who
from doge.data.encoder import build_encoder
from doge.data.encoding import encode_images
from doge.data.images import discover
from doge.errors import DogeError
from doge.gaps.gap import Gap
from doge.gaps.provenance import gap_provenance, side
from doge.gaps.store import registry_for
from doge.names import validate_name

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
    ray: str | None = None,
) -> Gap:
    """Encode both folders, estimate the gap, and store it as the next version of ``name``.

    ``ray`` ("local", "auto", a cluster address) encodes the images on Ray's actors."""
    # Everything a user can get wrong is checked before a model loads.
    validate_name(name)
    estimate = pluginmanager.get("estimators", estimator)
    estimator_params = pluginmanager.check_options("estimators", estimator, estimator_params)
    src_set = discover(src, limit=src_limit, seed=seed)
    tgt_set = discover(tgt, limit=tgt_limit, seed=seed)
    reg = registry_for(registry, home, url)

    enc = build_encoder(encoder, model=model, device=device)
    src_emb = encode_images(enc, src_set, batch_size, workers, progress, desc="source", ray=ray)
    tgt_emb = encode_images(enc, tgt_set, batch_size, workers, progress, desc="target", ray=ray)
    vector, params, *rest = estimate(src_emb, tgt_emb, **estimator_params)
    extras = {k: v.float().cpu().numpy() for k, v in (rest[0] if rest else {}).items()}  # e.g. coral's transform
    if not bool(vector.isfinite().all()):
        raise DogeError(f"estimator {estimator!r} gave a non-finite gap; check the images or try --estimator mean")
    _refuse_zero(vector)
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


def create_text_gap(
    name: str,
    *,
    src: str | Path | None = None,
    tgt: str | Path | None = None,
    src_text: str | None = None,
    tgt_text: str | None = None,
    classes: str | list[str] | None = None,
    classes_from: str | Path | None = None,
    model: str | None = None,
    text_model: str | None = None,
    encoder: str = "clip",
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
    """A gap with at least one side given as text: mean(target) - mean(source) embeddings.

    A text side is a template (``"a pencil sketch of a {}"``) filled with each class name and
    embedded by the CLIP text tower aligned with ``model``'s image encoder (the zero-shot
    directions of LADS and StyleGAN-NADA); the other side may be a folder of images (encoded by
    that image encoder). The vector lives in the image encoder's space, so render and eval take
    it like any gap.
    """
    from doge.data.text import build_text_encoder, class_names, describe_image_encoder, fill_template

    validate_name(name)
    for which, folder, text in (("source", src, src_text), ("target", tgt, tgt_text)):
        if (folder is None) == (text is None):
            flag = "--src" if which == "source" else "--tgt"
            raise DogeError(f"give the {which} as {flag} DIR or as {flag}-text TEMPLATE (one of them)")
    names = class_names(classes, classes_from)
    texts = {k: fill_template(t, names) for k, t in (("source", src_text), ("target", tgt_text)) if t is not None}
    sets = {
        k: discover(f, limit=lim, seed=seed)
        for k, f, lim in (("source", src, src_limit), ("target", tgt, tgt_limit))
        if f is not None
    }
    reg = registry_for(registry, home, url)

    # Text on both sides needs the image encoder's identity and width, not its weights.
    image_side = describe_image_encoder(encoder, model) if not sets else None
    enc = None
    if image_side is None:
        enc = build_encoder(encoder, model=model, device=device)
        image_side = enc.describe()
    text_enc = build_text_encoder(image_side, text_model=text_model, device=device)
    means, sides = {}, {}
    for key, template, limit in (("source", src_text, src_limit), ("target", tgt_text, tgt_limit)):
        if template is not None:
            means[key] = text_enc.encode(texts[key]).mean(0)
            sides[key] = {"text": template, "classes": names if "{}" in template else [], "texts": len(texts[key])}
        else:
            assert enc is not None  # built above whenever a side is a folder of images
            emb = encode_images(enc, sets[key], batch_size=batch_size, workers=workers, progress=progress, desc=key)
            means[key] = emb.vectors.mean(0)
            sides[key] = side(emb, limit)
    vector = (means["target"] - means["source"]).float()
    if not bool(vector.isfinite().all()):
        raise DogeError("the text gap is not finite; check the text model")
    _refuse_zero(vector)
    provenance = {
        "encoder": image_side,
        "text_encoder": text_enc.describe(),
        "estimator": {"name": "mean", "params": {}},
        "source": sides["source"],
        "target": sides["target"],
        "seed": seed,
        "created_at": now_iso(),
        "created_by": who(),
        "doge_version": doge.__version__,
        "description": description,
    }
    record = reg.create(name, vector.cpu().numpy(), provenance, description=description)
    log.info("stored %s (sha256 %s)", record.ref, record.sha256[:12])
    return Gap.from_record(record, vector.cpu().numpy())


def _refuse_zero(vector) -> None:
    """A gap of length 0 moves no image: refused before anything is stored."""
    if not bool(vector.any()):
        raise DogeError(
            "the gap is zero: source and target encode alike (the same folder or the same text on both sides?); "
            "give --src and --tgt of different domains"
        )
