"""What a gap means, in words: the vocabulary ranked by its cosine with the gap, signed.

The paper's extractor ranked the 10,000 most frequent English words by the absolute cosine
between the gap and each word's CLIP text embedding, so words against the gap ranked as high
as words along it (and its model was never built). Here the ranking is signed and two-sided:
words toward the target (largest cosine) and words toward the source (most negative cosine).

Raw CLIP text embeddings share a large common direction (any text is more like any other text
than like an image), which would tilt every cosine the same way; so each embedding is made unit
length and the vocabulary's mean is taken away before the cosine (``center=True``), leaving
what distinguishes one word from the others. The vocabulary's embeddings are cached per text
model, template and word list under ``DOGE_HOME/cache/text-embeddings`` (safetensors).
"""

from __future__ import annotations

import hashlib
import json
import logging
from importlib import resources
from pathlib import Path

import torch

from doge.atomic import write_atomic
from doge.errors import DogeError
from doge.gaps.gap import Gap
from doge.home import doge_home

log = logging.getLogger("doge")

DEFAULT_TEMPLATE = "a photo of {}"
DEFAULT_WORDS = 10_000


def domain_phrases() -> list[str]:
    """The styles, domains and conditions doge ships (``doge/gaps/data/phrases.txt``)."""
    text = resources.files("doge.gaps").joinpath("data/phrases.txt").read_text(encoding="utf-8")
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def vocabulary(words: int = DEFAULT_WORDS, phrases: bool = True) -> list[str]:
    """The ``words`` most frequent English words (wordfreq's shipped lists, no download) and doge's phrases."""
    found: list[str] = []
    if words:
        try:
            from wordfreq import top_n_list
        except ImportError:
            raise DogeError("doge gap explain needs wordfreq: pip install 'doge[explain]'") from None
        # Letters only: numbers and fragments such as "s" or "don't" tell nothing about a domain.
        # Drawn from a longer list so that exactly ``words`` of them remain.
        found = [w for w in top_n_list("en", 2 * words) if w.isalpha() and len(w) > 1][:words]
    if phrases:
        found += domain_phrases()
    return list(dict.fromkeys(found))


def _model_key(text_encoder) -> dict:
    """What identifies the tower's weights: hub revision, or a local folder's files' sizes and times."""
    key = {"model": text_encoder.model_id, "revision": text_encoder.revision}
    folder = Path(text_encoder.model_id).expanduser()
    if text_encoder.revision is None and folder.is_dir():
        key["files"] = sorted(
            (p.name, p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.iterdir()
            if p.suffix in (".safetensors", ".bin", ".json")
        )
    return key


def embed_vocabulary(
    text_encoder, words: list[str], template: str = DEFAULT_TEMPLATE, home=None, progress: bool = False
) -> torch.Tensor:
    """``[N, D]`` text embeddings of ``template`` filled with each word, cached under DOGE_HOME."""
    from safetensors.torch import load, save

    if "{}" not in template:
        raise DogeError(f"--template {template!r} has no {{}} where the word goes, e.g. 'a photo of {{}}'")
    key = json.dumps({**_model_key(text_encoder), "template": template, "words": words}, sort_keys=True)
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    path = doge_home(home) / "cache" / "text-embeddings" / f"{digest[:32]}.safetensors"
    if path.is_file():
        try:
            cached = load(path.read_bytes())["embeddings"]
        except Exception:  # a damaged cache file is rebuilt, never trusted
            cached = None
        # only what this code writes is used: float32, the expected shape, every value finite
        if (
            cached is not None
            and cached.dtype == torch.float32
            and tuple(cached.shape) == (len(words), text_encoder.dim)
            and bool(torch.isfinite(cached).all())
        ):
            return cached
        log.warning("ignoring the damaged vocabulary cache %s (recomputing it)", path)
    texts = [template.replace("{}", w) for w in words]
    embeddings = text_encoder.encode(texts, progress=progress, desc="vocabulary").float().contiguous()
    write_atomic(
        path, save({"embeddings": embeddings}, metadata={"model": text_encoder.model_id, "template": template})
    )
    return embeddings


def rank_words(
    gap_vector: torch.Tensor, embeddings: torch.Tensor, words: list[str], top: int = 20, center: bool = True
):
    """``(toward_target, toward_source)``: lists of ``(word, cosine)``, strongest first."""
    if embeddings.shape[1] != gap_vector.shape[0]:
        raise DogeError(f"the text embeddings have width {embeddings.shape[1]} but the gap {gap_vector.shape[0]}")
    if float(gap_vector.norm()) == 0:
        raise DogeError("the gap is all zeros: it points nowhere, so no word explains it")
    emb = torch.nn.functional.normalize(embeddings.double(), dim=1)
    if center:
        emb = torch.nn.functional.normalize(emb - emb.mean(0), dim=1)
    cos = emb @ torch.nn.functional.normalize(gap_vector.double(), dim=0)
    order = torch.argsort(cos, descending=True).tolist()
    top = min(top, len(words))
    toward_target = [(words[i], float(cos[i])) for i in order[:top] if cos[i] > 0]
    toward_source = [(words[i], float(cos[i])) for i in reversed(order[-top:]) if cos[i] < 0]
    return toward_target, toward_source


def explain_gap(
    gap: Gap,
    *,
    text_model: str | None = None,
    template: str = DEFAULT_TEMPLATE,
    words: int = DEFAULT_WORDS,
    phrases: bool = True,
    extra_words: list[str] | None = None,
    top: int = 20,
    center: bool = True,
    device: str | None = None,
    home=None,
    progress: bool = False,
) -> dict:
    """The words toward the gap's target and toward its source, with their cosines (JSON-ready)."""
    from doge.data.text import build_text_encoder

    vocab = list(dict.fromkeys(vocabulary(words, phrases) + list(extra_words or [])))
    if not vocab:
        raise DogeError("the vocabulary is empty: keep --words above 0 or the shipped phrases")
    text_encoder = build_text_encoder(gap.encoder, text_model=text_model, device=device)
    embeddings = embed_vocabulary(text_encoder, vocab, template, home=home, progress=progress)
    toward_target, toward_source = rank_words(gap.vector.float(), embeddings, vocab, top=top, center=center)
    return {
        "gap": gap.ref,
        "text_model": text_encoder.describe(),
        "template": template,
        "vocabulary": len(vocab),
        "centered": center,
        "toward_target": [{"word": w, "cosine": round(c, 4)} for w, c in toward_target],
        "toward_source": [{"word": w, "cosine": round(c, 4)} for w, c in toward_source],
    }


def explanation_labels(result: dict, max_chars: int = 1000) -> dict[str, str]:
    """Labels that keep the top words on the gap's version (``doge gap show`` lists them)."""

    def joined(items) -> str:
        out = ""
        for item in items:
            piece = f"{item['word']} ({item['cosine']:.2f})"
            candidate = f"{out}, {piece}" if out else piece
            if len(candidate) > max_chars:
                break
            out = candidate
        return out or "-"

    return {
        "explain.toward-target": joined(result["toward_target"]),
        "explain.toward-source": joined(result["toward_source"]),
        "explain.text-model": result["text_model"]["model"][:max_chars],
    }
