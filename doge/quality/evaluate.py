"""``doge gap eval``: judge a stored gap on held-out images of both domains.

Everything is measured with the gap's own encoder: transfer (``doge.quality.transfer``),
stability (``doge.quality.stability``, resampling the gap's reference folders when they still
exist, else the held-out images), and how every registered estimator does on these images.
The result is one JSON-able record; it is stored on the gap version and can be plotted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import doge
from doge import pluginmanager, storage
from doge.clock import now_iso, who
from doge.data.embeddings import Embeddings
from doge.data.encoder import encoder_for_gap
from doge.data.encoding import encode_as
from doge.data.images import discover, file_sha256
from doge.errors import DogeError, finite, whole
from doge.gaps.gap import Gap
from doge.gaps.store import load_gap, with_registry
from doge.quality.stability import DEFAULT_DRAWS, accepted_params, stability
from doge.quality.transfer import DEFAULT_WEIGHTS, DomainJudge
from doge.rendering.plan import MAX_SWEEP
from doge.runtime import Runtime, runtime_from_keywords

log = logging.getLogger("doge")


@dataclass
class Side:
    """One domain's images: their embeddings and each file's sha256 (for the overlap check)."""

    emb: Embeddings
    hashes: set[str]


def _encode_side(enc, folder, limit, seed, runtime: Runtime, desc) -> Side:
    images = discover(folder, limit=limit, seed=seed)
    emb = encode_as(enc, images, runtime, desc)
    return Side(emb, {file_sha256(storage.location(images.root) / f) for f in emb.files})


def _reference(gap: Gap, enc, runtime: Runtime) -> tuple[Side, Side] | None:
    """The gap's own reference images, re-encoded, when both folders still exist."""
    prov = gap.provenance
    src, tgt = prov.get("source", {}), prov.get("target", {})
    if not all(side.get("folder") and storage.is_folder(side["folder"]) for side in (src, tgt)):
        return None
    seed = prov.get("seed", 0)
    sides = []
    for side, desc in ((src, "reference source"), (tgt, "reference target")):
        encoded = _encode_side(enc, side["folder"], side.get("limit"), seed, runtime, desc)
        if side.get("digest") and encoded.emb.digest != side["digest"]:
            log.warning("%s changed since %s was made; using the images it holds now", side["folder"], gap.ref)
        sides.append(encoded)
    return sides[0], sides[1]


def _overlap(gap: Gap, held: tuple[Side, Side], ref: tuple[Side, Side] | None) -> dict:
    """How many held-out images are also reference images (by content), per side."""
    out: dict[str, int | str] = {}
    for i, key in enumerate(("source", "target")):
        if ref is not None:
            out[key] = len(held[i].hashes & ref[i].hashes)
        else:  # only the digest of the whole set is known
            out[key] = len(held[i].hashes) if held[i].emb.digest == gap.provenance.get(key, {}).get("digest") else 0
        if out[key]:
            log.warning(
                "%d of the %d held-out %s images were used to make %s: judge a gap on images it was not made from",
                out[key],
                len(held[i].emb),
                key,
                gap.ref,
            )
    out["checked"] = "files" if ref is not None else "set digest"
    return out


def _estimate(name: str, src: Embeddings, tgt: Embeddings, params: dict | None = None):
    fn = pluginmanager.get("estimators", name)
    out = fn(src, tgt, **accepted_params(fn, params or {}))
    extras = out[2] if len(out) > 2 else {}
    return out[0], {k: v.numpy() for k, v in extras.items()}


def compare_estimators(
    ref_src: Embeddings, ref_tgt: Embeddings, judge: DomainJudge, weights=DEFAULT_WEIGHTS, names=None
) -> dict:
    """Each estimator's gap from the reference sets, judged on the held-out sets; the best named.

    Best: the highest score (transfer accuracy less overshoot, see ``doge.quality.transfer``) at
    its best weight; on a tie, the one whose shifted sources land closest to the targets' centre
    there (lowest centroid ratio).
    """
    results = []
    for name in names or list(pluginmanager.table("estimators")):
        try:
            vector, extras = _estimate(name, ref_src, ref_tgt)
        except DogeError as exc:
            results.append({"estimator": name, "error": str(exc)})
            continue
        t = judge.transfer(vector.numpy(), extras, weights)
        results.append(
            {
                "estimator": name,
                "best_weight": t["best_weight"],
                "accuracy_at_best": t["accuracy_at_best"],
                "score_at_best": t["score_at_best"],
                "centroid_ratio_at_best": t["centroid_ratio_at_best"],
                "mean_accuracy": t["mean_accuracy"],
                "accuracy_at_1": _at(t, 1.0),
            }
        )
    ranked = sorted(
        (r for r in results if "error" not in r), key=lambda r: (-r["score_at_best"], r["centroid_ratio_at_best"])
    )
    return {"results": results, "best": ranked[0]["estimator"] if ranked else None}


def _weights(weights) -> list[float]:
    """The edit weights to judge at: a non-empty list of finite numbers, sorted, without repeats."""
    if isinstance(weights, str) or not hasattr(weights, "__iter__"):
        raise DogeError(f"--weights {weights!r}: give a list of edit weights, e.g. [0, 1, 2] (or START:STOP:COUNT)")
    chosen = sorted({finite(w, "--weights") for w in weights})
    if not chosen or len(chosen) > MAX_SWEEP:
        raise DogeError(f"--weights: give 1 to {MAX_SWEEP} edit weights, not {len(chosen)}")
    return chosen


def _at(transfer: dict, weight: float):
    weights = transfer["weights"]
    return transfer["accuracy"][weights.index(weight)] if weight in weights else None


def evaluate_gap(
    ref: str,
    src,
    tgt,
    *,
    model: str | None = None,
    weights=DEFAULT_WEIGHTS,
    draws: int = DEFAULT_DRAWS,
    estimators: bool = True,
    plot=None,
    store: bool = True,
    seed: int = 0,
    runtime: Runtime | None = None,
    **options,
) -> dict:
    """Judge gap ``ref`` on held-out images ``src`` and ``tgt``; store and return the record.

    ``runtime`` (:class:`~doge.runtime.Runtime`) says how the images are encoded and which registry
    holds the gap; any of its fields may be a keyword instead (``device="cpu"``, ``home=...``)."""
    runtime = runtime_from_keywords(runtime, options, "evaluate_gap", unused=("dtype",))
    weights = _weights(weights)
    draws, seed = whole(draws, "--draws", 2), whole(seed, "--seed", 0)
    if plot is not None:
        from doge.quality.plot import check_plot_path

        check_plot_path(plot)
    runtime = with_registry(runtime)
    reg = runtime.registry
    gap = load_gap(ref, registry=reg)
    discover(src), discover(tgt)  # a wrong folder is reported before a model loads
    enc = encoder_for_gap(gap, model, runtime.device)
    held = (
        _encode_side(enc, src, None, seed, runtime, "held-out source"),
        _encode_side(enc, tgt, None, seed, runtime, "held-out target"),
    )
    reference = _reference(gap, enc, runtime)
    overlap = _overlap(gap, held, reference)
    hs, ht = held[0].emb.vectors.numpy(), held[1].emb.vectors.numpy()
    extras = {k: v.numpy() for k, v in gap.extras.items()}
    judge = DomainJudge(hs, ht, seed=seed)
    transfer = judge.transfer(gap.vector.numpy(), extras, weights)
    pool = reference or held
    record = {
        "gap": gap.ref,
        "gap_sha256": gap.sha256,
        "created_at": now_iso(),
        "created_by": who(),
        "encoder": enc.describe(),
        "estimator": gap.provenance.get("estimator", {}).get("name"),
        "source": _describe(held[0]),
        "target": _describe(held[1]),
        "overlap": overlap,
        "transfer": transfer,
        "stability": _stability(gap, pool, "reference" if reference else "held-out", draws, seed),
        "estimators": _estimators(reference, judge, weights) if estimators else {"skipped": "not asked for"},
        "doge_version": doge.__version__,
    }
    if plot is not None:
        from doge.quality.plot import plot_evaluation

        plot_evaluation(plot, record, hs, ht, gap.vector.numpy(), extras)
        record["plot"] = str(plot)
    record = json_safe(record)
    if store:
        record = reg.add_evaluation(gap.ref, record)
        if plot is not None:  # the plot travels with the evaluation: doge serve shows it
            png = Path(plot).read_bytes()
            settings = {"evaluation_id": record["evaluation_id"], "file": str(plot)}
            reg.add_attachment(gap.ref, png, "plot", settings, evaluation_id=record["evaluation_id"])
    return record


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None, so that the record is strict JSON."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _describe(side: Side) -> dict:
    return {"folder": side.emb.folder, "images": len(side.emb), "skipped": side.emb.skipped, "digest": side.emb.digest}


def _stability(gap: Gap, pool: tuple[Side, Side], where: str, draws: int, seed: int) -> dict:
    estimator = gap.provenance.get("estimator", {})
    name = estimator.get("name")
    try:
        fn = pluginmanager.get("estimators", name)
    except DogeError:
        return {"skipped": f"estimator {name!r} is not installed here"}
    result = stability(fn, estimator.get("params") or {}, pool[0].emb, pool[1].emb, gap.vector, draws=draws, seed=seed)
    return {"pool": where, **result}


def _estimators(reference: tuple[Side, Side] | None, judge: DomainJudge, weights) -> dict:
    if reference is None:
        return {"skipped": "the gap's reference folders are not here: each estimator needs them to make its gap"}
    return {"pool": "reference", **compare_estimators(reference[0].emb, reference[1].emb, judge, weights)}
