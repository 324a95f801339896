"""The CLIP text tower that lives in the same embedding space as a gap's CLIP image encoder.

Plain CLIP models (``openai/clip-vit-large-patch14``, a folder saved from ``CLIPModel``) carry
both towers. Stable unCLIP's image encoder is OpenCLIP ViT-H/14 without its text tower, so for
it the default is ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``'s; ``doge models tiny DIR`` writes an
aligned tiny one to ``DIR/clip-text``, which is used when present. A tower whose width or family
does not match the image encoder is refused in one line. torch and transformers are imported
only when a tower is built: the plugin manager imports this module on ``doge --help``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from doge.plugin import (
    DogeError,
    NotFound,
    first_line,
    hookimpl,
    pick_device,
    quiet_loading,
    quiet_transformers,
    require_config,
    resolve_source,
    warn_if_tiny,
)

# The text half of the OpenCLIP model whose image half is SD 2.1 unCLIP's image encoder.
DEFAULT_TEXT_MODEL = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
# Where `doge models tiny DIR` puts the tiny text tower aligned with DIR's image encoder.
TINY_TEXT_FOLDER = "clip-text"
# What must agree between the image encoder and the vision half of a text model's CLIP config.
_FAMILY_KEYS = ("hidden_size", "num_hidden_layers", "patch_size", "image_size")
_FIX = "pass --text-model with the CLIP model whose image tower made the gap"


def _read_config(location: str, subfolder: str = "") -> dict | None:
    """``config.json`` of a local folder or a cached/fetched hub model, or None when unavailable."""
    try:
        return require_config(location, "model", "", f"{subfolder}/config.json" if subfolder else "config.json")
    except NotFound:  # no such file, unknown repo, invalid id, no network: nothing to compare against
        return None


def image_encoder_config(model: str) -> dict | None:
    """The vision config of a gap's image encoder (unCLIP ``image_encoder/`` or plain CLIP), if readable."""
    unclip = _read_config(model, "image_encoder")
    if unclip is not None:
        return unclip
    config = _read_config(model)
    if config is None:
        return None
    return config.get("vision_config", config)


def default_text_model(image_model: str) -> str:
    """The text tower aligned with ``image_model``: itself when it is a full CLIP model, else OpenCLIP ViT-H."""
    local = Path(image_model).expanduser()
    if local.is_dir() and (local / TINY_TEXT_FOLDER / "config.json").is_file():
        return str(local / TINY_TEXT_FOLDER)
    config = _read_config(image_model)
    if config is not None and "text_config" in config:
        return image_model
    return DEFAULT_TEXT_MODEL


class ClipTextEncoder:
    """CLIP ``text_embeds`` (the projected text embedding), batched, float32 on the CPU."""

    plugin = "clip"

    def __init__(self, model: str, device: str | None = None, dtype: Any = None, revision: str | None = None):

        self.model_id = str(model)
        self.device = pick_device(device)
        config = _read_config(self.model_id)
        if config is None:
            raise DogeError(f"text model {self.model_id!r} not found locally and no hub access: {_FIX}")
        if config.get("model_type") not in ("clip", "clip_text_model"):
            raise DogeError(
                f"text model {self.model_id!r} is a {config.get('model_type')!r} model, not a CLIP text tower: {_FIX}"
            )
        self.vision_config = config.get("vision_config")
        warn_if_tiny(self.model_id)
        quiet_loading()
        from transformers import AutoTokenizer, CLIPTextModelWithProjection

        pinned: dict[str, Any] = {"revision": revision} if revision else {}
        model_obj: Any
        try:
            source = resolve_source(self.model_id, revision)
            self.revision = source.commit
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_id, **pinned)
            # A full CLIP model holds a vision half too: quiet the report that it is left unused.
            with quiet_transformers():
                model_obj = CLIPTextModelWithProjection.from_pretrained(self.model_id, **pinned)
        except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: weights that do not fit the config
            raise DogeError(f"cannot load the CLIP text tower of {self.model_id!r}: {first_line(exc)}") from exc
        self._model = model_obj.to(self.device).eval()
        self.dtype = self._model.dtype
        self.dim = int(self._model.config.projection_dim)

    @classmethod
    def for_image_encoder(
        cls, image_encoder: dict, text_model: str | None = None, device: str | None = None
    ) -> ClipTextEncoder:
        """The text tower for a gap made by ``image_encoder`` (its provenance), checked to share its space."""
        image_model = str(image_encoder.get("model") or "")
        chosen = text_model or default_text_model(image_model)
        encoder = cls(chosen, device=device)
        width = image_encoder.get("dim")
        if width is not None and int(width) != encoder.dim:
            raise DogeError(
                f"text model {chosen!r} has width {encoder.dim} but the gap's image encoder ({image_model}) has "
                f"width {width}: {_FIX}"
            )
        vision = image_encoder_config(image_model) if image_model else None
        if vision is not None and encoder.vision_config is not None:
            differ = [k for k in _FAMILY_KEYS if vision.get(k) != encoder.vision_config.get(k)]
            if differ:
                shown = ", ".join(f"{k} {vision.get(k)} vs {encoder.vision_config.get(k)}" for k in differ)
                raise DogeError(
                    f"text model {chosen!r} belongs to another CLIP family than the gap's image encoder "
                    f"{image_model} ({shown}): {_FIX}"
                )
        return encoder

    @classmethod
    def describe_image_encoder(cls, model: str) -> dict[str, Any] | None:
        """What the ``clip`` image encoder of ``model`` records as provenance, from its config alone.

        A gap made only of text needs the image encoder's identity and width, not its weights
        (SD 2.1 unCLIP's is 2.5 GB); None when the config cannot be read here.
        """

        config = _read_config(model, "image_encoder") or _read_config(model)
        if config is None:
            return None
        dim = config.get("projection_dim") or (config.get("vision_config") or {}).get("projection_dim")
        if dim is None:
            return None
        try:
            commit = resolve_source(model).commit
        except DogeError:
            return None
        return {"plugin": cls.plugin, "model": str(model), "revision": commit, "dim": int(dim), "dtype": "float32"}

    def encode(self, texts: list[str], batch_size: int = 256, progress: bool = False, desc: str = "texts"):
        """``[N, D]`` float32 text embeddings of ``texts`` on the CPU."""
        import torch
        from tqdm.auto import tqdm

        out = []
        starts = range(0, len(texts), batch_size)
        with torch.inference_mode():
            for start in tqdm(starts, desc=desc, unit="batch", disable=not progress or len(starts) < 2):
                batch = self.tokenizer(
                    list(texts[start : start + batch_size]), padding=True, truncation=True, return_tensors="pt"
                )
                embeds = self._model(**{k: v.to(self.device) for k, v in batch.items()}).text_embeds
                out.append(embeds.float().cpu())
        if not out:
            return torch.zeros((0, self.dim))
        return torch.cat(out)

    def describe(self) -> dict[str, Any]:
        return {"plugin": self.plugin, "model": self.model_id, "revision": self.revision, "dim": self.dim}


@hookimpl
def register_text_encoders(register):
    register("clip", ClipTextEncoder)
