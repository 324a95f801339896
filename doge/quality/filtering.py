"""``doge filter``: score rendered images and mark the ones that missed in ``manifest.jsonl``.

Two scores per image, both with the gap's own encoder:

- **target score**: the probability that the image belongs to the target domain, from a
  logistic-regression domain classifier fitted on reference images of both domains (the
  gap's own folders, or ``--src``/``--tgt``); 0.5 is the classifier's boundary.
- **source similarity**: the cosine between the image's embedding and its source image's:
  how much of the source it still shows.

An image is rejected when a score falls below its threshold. The verdict goes into its
manifest line as ``"filter": {...}``; the manifest is rewritten atomically, and nothing is
deleted unless asked.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from doge import storage
from doge.errors import DogeError, NotFound
from doge.gaps.compare import cosine
from doge.locks import output_lock
from doge.rendering import manifest
from doge.runtime import Runtime, runtime_from_keywords

DEFAULT_MIN_TARGET_SCORE = 0.5
MANIFEST = "manifest.jsonl"


def _manifest_entries(out: Path) -> dict[str, dict]:
    path = out / MANIFEST
    if not path.is_file():
        raise NotFound(f"no {MANIFEST} in {out}: filter reads the manifest that doge render writes there")
    entries = manifest.read(path)
    if not entries:
        raise DogeError(f"{path} lists no images: render into {out} first")
    return entries


def _gap_of(entries: dict[str, dict], gap: str | None) -> str:
    """The gap to judge with: the one given, or the single gap the images were rendered with."""
    if gap:
        return gap
    used = sorted({g["ref"] for e in entries.values() for g in e.get("gaps", [])})
    if len(used) == 1:
        return used[0]
    raise DogeError(
        f"the images were rendered with {len(used)} gaps ({', '.join(used) or 'none recorded'}): "
        "name the one to judge with --gap REF"
    )


def _references(gap, src, tgt) -> tuple[Path, Path]:
    if src and tgt:
        return storage.location(src), storage.location(tgt)
    if src or tgt:
        raise DogeError("give both --src and --tgt reference folders, or neither to use the gap's own")
    folders = [storage.location(gap.provenance.get(side, {}).get("folder") or "") for side in ("source", "target")]
    missing = [storage.shown(f) for f in folders if not str(f) or str(f) == "." or not storage.is_folder(f)]
    if missing:
        raise DogeError(
            f"the reference folders of {gap.ref} are not here ({', '.join(missing)}): "
            "give reference images of both domains with --src DIR --tgt DIR"
        )
    return folders[0], folders[1]


def _sources(entries: dict[str, dict], images: list[str], root, out) -> dict[str, Any]:
    """Each image's ``source`` from the manifest, held inside the reference source folder ``root``
    (``--src``, else the gap's own) by the one containment rule (:func:`doge.storage.child`).

    The manifest is a user's file: a source that is a URL of another kind than ``root``, absolute
    outside it, or climbs out with ``..`` is refused naming the manifest line, never fetched."""
    found = {}
    for image in images:
        source = entries[image].get("source")
        if source is None:
            continue
        where = f"{storage.shown(out / MANIFEST)} line for {image!r}: its source"
        fix = f"; give the folder the images were rendered from with --src (now {storage.shown(root)})"
        if not isinstance(source, str) or storage.is_url(source) != storage.is_remote(root):
            raise DogeError(f"{where} {str(source)[:80]!r} is not inside {storage.shown(root)}{fix}")
        if storage.is_remote(root):
            path = storage.location(source)
            if storage.protocol(path) != storage.protocol(root):
                raise DogeError(f"{where} {source[:80]!r} is not inside {storage.shown(root)}{fix}")
            rel = storage.relative(path, root)
        else:
            rel = storage.relative(Path(source).absolute(), Path(root).absolute())
        try:
            found[image] = storage.child(root, rel, where)
        except DogeError as exc:
            raise DogeError(f"{exc}{fix}") from None
    return found


def _embed_files(enc, files: list[Path], runtime: Runtime, desc: str) -> dict[str, np.ndarray]:
    """Embeddings of the decodable ``files``, keyed by ``str(path)`` as given."""
    from doge.data.encoding import encode_as
    from doge.data.images import ImageSet, relative_posix

    if not files:
        return {}
    root = Path(".")
    emb = encode_as(enc, ImageSet(root=root, files=files, labels=[""] * len(files)), runtime, desc)
    by_name = {relative_posix(f, root): str(f) for f in files}
    return {by_name[name]: vector for name, vector in zip(emb.files, emb.vectors.numpy().astype(np.float64))}


def verdict(
    target_score: float,
    source_similarity: float | None,
    min_target_score: float | None,
    min_source_similarity: float | None,
) -> dict:
    """The ``filter`` record of one image: its scores, and why it is rejected (if it is).

    A NaN ``source_similarity`` (a zero embedding has no direction) fails any minimum and is
    recorded as null, which JSON can hold.
    """
    reasons = []
    if min_target_score is not None and target_score < min_target_score:
        reasons.append(f"target score {target_score:.3f} < {min_target_score:g}")
    undefined = source_similarity is not None and math.isnan(source_similarity)
    if min_source_similarity is not None and source_similarity is not None:
        if undefined:
            reasons.append("source similarity undefined (a zero embedding)")
        elif source_similarity < min_source_similarity:
            reasons.append(f"source similarity {source_similarity:.3f} < {min_source_similarity:g}")
    return {
        "rejected": bool(reasons),
        "target_score": round(target_score, 4),
        "source_similarity": None if source_similarity is None or undefined else round(source_similarity, 4),
        "reasons": reasons,
    }


def filter_outputs(
    out,
    gap: str | None = None,
    *,
    src=None,
    tgt=None,
    sources_root=None,
    min_target_score: float | None = DEFAULT_MIN_TARGET_SCORE,
    min_source_similarity: float | None = None,
    delete: bool = False,
    model: str | None = None,
    runtime: Runtime | None = None,
    **options,
) -> dict:
    """Score every image listed in ``out/manifest.jsonl``, mark the rejected ones, return a summary.

    A manifest line's ``source`` is read only inside ``sources_root`` (default: the reference
    source folder, ``src`` or the gap's own). ``runtime`` (:class:`~doge.runtime.Runtime`) says how
    the images are encoded and which registry holds the gap; any of its fields may be a keyword
    instead (``device="cpu"``, ``home=...``)."""
    runtime = runtime_from_keywords(runtime, options, "filter_outputs", unused=("dtype",))
    from doge.data.encoder import encoder_for_gap
    from doge.data.images import discover
    from doge.gaps.store import load_gap, with_registry
    from doge.quality.transfer import check_sizes, domain_classifier

    out = storage.output_location(out, "OUT")
    _manifest_entries(out)  # nothing to filter is one line, before the folder is locked
    with output_lock(out, "filter"):  # no render or other filter writes there meanwhile
        entries = _manifest_entries(out)
        runtime = with_registry(runtime)
        g = load_gap(_gap_of(entries, gap), registry=runtime.registry)
        ref_src, ref_tgt = _references(g, src, tgt)
        ref_sets = discover(ref_src), discover(ref_tgt)
        enc = encoder_for_gap(g, model, runtime.device)

        refs = [
            np.stack(list(_embed_files(enc, s.files, runtime, d).values()))
            for s, d in zip(ref_sets, ("reference source", "reference target"))
        ]
        check_sizes(*refs)
        classifier = domain_classifier(*refs)
        present = [image for image in entries if (out / image).is_file()]
        generated = _embed_files(enc, [out / image for image in present], runtime, "generated")
        generated = {image: generated[str(out / image)] for image in present if str(out / image) in generated}
        sources_at = ref_src if sources_root is None else storage.location(sources_root)
        source_of = _sources(entries, present, sources_at, out)
        readable = sorted(set(source_of.values()), key=str)
        source_emb = _embed_files(enc, [s for s in readable if storage.is_file(s)], runtime, "sources")

        scored = [image for image in present if image in generated]
        scores = classifier.predict_proba(np.stack([generated[i] for i in scored]))[:, 1] if scored else []
        deleted = 0
        for image, score in zip(scored, scores):
            entry = entries[image]
            src_vec = source_emb.get(str(source_of[image])) if image in source_of else None
            similarity = None if src_vec is None else cosine(generated[image], src_vec)
            record = {**verdict(float(score), similarity, min_target_score, min_source_similarity), "gap": g.ref}
            if record["rejected"] and delete:
                (out / image).unlink(missing_ok=True)
                record["deleted"] = True
                deleted += 1
            entry["filter"] = record
        manifest.rewrite(out / MANIFEST, list(entries.values()))
    rejected = [i for i in scored if entries[i]["filter"]["rejected"]]
    return {
        "out": storage.shown(out),
        "manifest": storage.shown(out / MANIFEST),
        "gap": g.ref,
        "references": {"source": str(ref_src), "target": str(ref_tgt)},
        "min_target_score": min_target_score,
        "min_source_similarity": min_source_similarity,
        "images": len(entries),
        "scored": len(scored),
        "kept": len(scored) - len(rejected),
        "rejected": len(rejected),
        "deleted": deleted,
        "unscored": len(entries) - len(scored),
        "rejected_images": rejected,
    }
