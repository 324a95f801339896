"""Making a gap from two folders of images (discover, encode, estimate, store), or from text."""

from __future__ import annotations

import logging
from pathlib import Path

import doge
from doge import pluginmanager
from doge.clock import now_iso, who
from doge.data.encoder import build_encoder
from doge.data.encoding import encode_as
from doge.data.images import discover
from doge.errors import DogeError
from doge.gaps.gap import Gap
from doge.gaps.options import Sampling, TextSides
from doge.gaps.provenance import gap_provenance, side
from doge.gaps.store import with_registry
from doge.names import validate_name
from doge.runtime import Runtime, fold_keywords, refuse_unused

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
    description: str = "",
    sampling: Sampling | None = None,
    runtime: Runtime | None = None,
    **options,
) -> Gap:
    """Encode both folders, estimate the gap, and store it as the next version of ``name``.

    ``sampling`` (:class:`Sampling`) picks the images, ``runtime`` (:class:`~doge.runtime.Runtime`)
    says how they are encoded (its ``ray``: on Ray's actors) and into which registry; any field of
    either may be a keyword instead (``src_limit=100``, ``device="cpu"``, ``home=...``)."""
    sampling, runtime = fold_keywords("create_gap", options, (Sampling, sampling), (Runtime, runtime))
    refuse_unused(runtime, "create_gap", ("dtype",))
    # Everything a user can get wrong is checked before a model loads.
    validate_name(name)
    estimate = pluginmanager.get("estimators", estimator)
    estimator_params = pluginmanager.check_options("estimators", estimator, estimator_params)
    src_set = discover(src, limit=sampling.src_limit, seed=sampling.seed)
    tgt_set = discover(tgt, limit=sampling.tgt_limit, seed=sampling.seed)
    enc = build_encoder(encoder, model=model, device=runtime.device)
    reg = with_registry(runtime).registry  # after the encoder's checks, before the long part: encoding

    src_emb = encode_as(enc, src_set, runtime, "source")
    tgt_emb = encode_as(enc, tgt_set, runtime, "target")
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
        src_limit=sampling.src_limit,
        tgt_limit=sampling.tgt_limit,
        seed=sampling.seed,
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
    text: TextSides | None = None,
    model: str | None = None,
    encoder: str = "clip",
    description: str = "",
    sampling: Sampling | None = None,
    runtime: Runtime | None = None,
    **options,
) -> Gap:
    """A gap with at least one side given as text: mean(target) - mean(source) embeddings.

    A text side is a template (``"a pencil sketch of a {}"``) filled with each class name and
    embedded by the CLIP text tower aligned with ``model``'s image encoder (the zero-shot
    directions of LADS and StyleGAN-NADA); the other side may be a folder of images (encoded by
    that image encoder). The vector lives in the image encoder's space, so render and eval take
    it like any gap.

    ``text`` (:class:`TextSides`), ``sampling`` (:class:`Sampling`) and ``runtime``
    (:class:`~doge.runtime.Runtime`): any of their fields may be a keyword instead
    (``src_text="a photo of a {}"``, ``classes="cat,dog"``, ``device="cpu"``).
    """
    text, sampling, runtime = fold_keywords(
        "create_text_gap", options, (TextSides, text), (Sampling, sampling), (Runtime, runtime)
    )
    refuse_unused(runtime, "create_text_gap", ("dtype", "ray"))  # a text gap is made here (as the CLI says)
    src_text, tgt_text, seed = text.src_text, text.tgt_text, sampling.seed
    from doge.data.text import build_text_encoder, class_names, describe_image_encoder, fill_template

    validate_name(name)
    for which, folder, template in (("source", src, src_text), ("target", tgt, tgt_text)):
        if (folder is None) == (template is None):
            flag = "--src" if which == "source" else "--tgt"
            raise DogeError(f"give the {which} as {flag} DIR or as {flag}-text TEMPLATE (one of them)")
    names = class_names(text.classes, text.classes_from)
    texts = {k: fill_template(t, names) for k, t in (("source", src_text), ("target", tgt_text)) if t is not None}
    sets = {
        k: discover(f, limit=lim, seed=seed)
        for k, f, lim in (("source", src, sampling.src_limit), ("target", tgt, sampling.tgt_limit))
        if f is not None
    }

    # Text on both sides needs the image encoder's identity and width, not its weights.
    image_side = describe_image_encoder(encoder, model) if not sets else None
    enc = None
    if image_side is None:
        enc = build_encoder(encoder, model=model, device=runtime.device)
        image_side = enc.describe()
    text_enc = build_text_encoder(image_side, text_model=text.text_model, device=runtime.device)
    reg = with_registry(runtime).registry  # after the encoders' checks, before encoding
    means, sides = {}, {}
    for key, template, limit in (("source", src_text, sampling.src_limit), ("target", tgt_text, sampling.tgt_limit)):
        if template is not None:
            means[key] = text_enc.encode(texts[key]).mean(0)
            sides[key] = {"text": template, "classes": names if "{}" in template else [], "texts": len(texts[key])}
        else:
            assert enc is not None  # built above whenever a side is a folder of images
            emb = encode_as(enc, sets[key], runtime, key)
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
