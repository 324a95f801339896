"""Where a model lives: a local folder in diffusers or transformers layout, or a Hugging Face id.

Hub ids go through the HF cache (``hf_hub_download``), so ``HF_HUB_OFFLINE`` and the cache
are honoured; nothing here imports torch.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from doge.errors import DogeError, NotFound, first_line

DEFAULT_MODEL = "stabilityai/stable-diffusion-2-1-unclip"
MODEL_ENV = "DOGE_MODEL"

_FIX = "pass --model DIR, or run `doge models tiny DIR` for a test model"
_COMMIT = re.compile(r"snapshots/([0-9a-f]{40})/")


def default_model() -> str:
    return os.environ.get(MODEL_ENV) or DEFAULT_MODEL


@dataclass(frozen=True)
class ModelSource:
    location: str  # what from_pretrained gets: a folder or a hub id
    encoder_subfolder: str  # "" for a plain CLIP model
    processor_subfolder: str
    commit: str | None  # commit hash of the HF cache snapshot, None for a local folder
    on_hub: bool = False


_UNCLIP = ("image_encoder", "feature_extractor")
_PLAIN = ("", "")


def _looks_local(model: str) -> bool:
    return model.startswith((".", "/", "~")) or "\\" in model or model.count("/") > 1


def _local_source(model: str) -> ModelSource:
    folder = Path(model).expanduser()
    if not folder.is_dir():
        raise NotFound(f"model folder {model!r} does not exist: {_FIX}")
    if (folder / "image_encoder").is_dir():
        return ModelSource(str(folder), *_UNCLIP, commit=None)
    if (folder / "config.json").is_file():
        return ModelSource(str(folder), *_PLAIN, commit=None)
    raise DogeError(
        f"folder {model!r} holds neither a diffusers unCLIP model (image_encoder/) nor a CLIP "
        f"model (config.json): {_FIX}"
    )


def _cached_or_fetched(repo: str, filename: str, revision: str | None) -> str | None:
    """Path of a repo file via the HF cache (and the hub unless offline); None if unavailable."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return hf_hub_download(repo, filename, revision=revision)
    except EntryNotFoundError:  # also LocalEntryNotFoundError: offline or no network, not cached
        return None


def _commit_of(path: str) -> str | None:
    found = _COMMIT.search(Path(path).as_posix())
    return found.group(1) if found else None


def _hub_source(model: str, revision: str | None) -> ModelSource:
    from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        index = _cached_or_fetched(model, "model_index.json", revision)
        if index is not None:
            return ModelSource(model, *_UNCLIP, commit=_commit_of(index), on_hub=True)
        config = _cached_or_fetched(model, "config.json", revision)
    except GatedRepoError:
        raise DogeError(f"model {model!r} is gated: accept its licence on the hub, then `hf auth login`") from None
    except RepositoryNotFoundError:
        raise NotFound(f"model {model!r} is not on the hub (or is private): {_FIX}") from None
    except RevisionNotFoundError:
        raise NotFound(f"model {model!r} has no revision {revision!r}; leave --revision out for main") from None
    except HFValidationError:
        raise NotFound(f"model {model!r} is neither a folder nor a valid hub id: {_FIX}") from None
    if config is None:
        raise NotFound(f"model {model!r} not found locally and no hub access: {_FIX}")
    return ModelSource(model, *_PLAIN, commit=_commit_of(config), on_hub=True)


def resolve_source(model: str, revision: str | None = None) -> ModelSource:
    """Where the image encoder and its processor are, and which layout the model has."""
    if _looks_local(model) or Path(model).expanduser().exists():
        return _local_source(model)
    return _hub_source(model, revision)


def component_config(model: str, subfolder: str, filename: str = "config.json") -> dict:
    """``config.json`` (or ``filename``, e.g. a scheduler's) of one component of a diffusers model."""
    source = resolve_source(model)
    if not source.on_hub:
        path = Path(source.location) / subfolder / filename
        if not path.is_file():
            raise NotFound(f"model {model!r} has no {subfolder}/{filename}: is it a Stable unCLIP model? {_FIX}")
    else:
        found = _cached_or_fetched(model, f"{subfolder}/{filename}", None)
        if found is None:
            raise NotFound(f"model {model!r} has no {subfolder}/{filename} in the cache or on the hub: {_FIX}")
        path = Path(found)
    return json.loads(path.read_text())


def require_config(location: str, what: str, fix: str, filename: str = "config.json") -> dict:
    """The top-level ``config.json`` (or ``filename``, e.g. ``image_encoder/config.json``) of a model
    folder or hub id, or one NotFound line naming ``fix``.

    Lets a command check that a model (a ControlNet, say) is there before it loads any weights.
    """
    folder = Path(location).expanduser()
    if _looks_local(location) or folder.exists():
        path = folder / filename
        if not path.is_file():
            raise NotFound(f"{what} {location!r}: no such folder, or it has no {filename}; {fix}")
        return json.loads(path.read_text())
    try:
        found = _cached_or_fetched(location, filename, None)
    except Exception as exc:  # unknown repo, invalid id, gated: all mean "not usable here"
        raise NotFound(f"{what} {location!r} cannot be used ({first_line(exc)[:200]}); {fix}") from None
    if found is None:
        raise NotFound(f"{what} {location!r} not found locally and no hub access; {fix}")
    return json.loads(Path(found).read_text())


def quiet_loading() -> None:
    """Hide transformers' and diffusers' per-file "Loading weights" bars: doge shows its own progress."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    if "diffusers" in sys.modules:  # never import diffusers just to quiet it
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.disable_progress_bar()


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hide transformers' shard-writing bars and its notice that it uses the PIL image processor.

    The notice is a warn-once: given here, it stays quiet later too, which is what we want when
    torchvision is absent on purpose.
    """
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


# -- doge's tiny test models (built by doge.testing) ----------------------------------------

MARKER = "DOGE_TINY_MODEL.txt"
MARKER_TEXT = (
    "This is a tiny model with random weights, built by doge for tests and offline trials.\n"
    "Its embeddings carry no meaning and the images it renders are noise.\n"
    "For real results use stabilityai/stable-diffusion-2-1-unclip or another unCLIP model.\n"
)


def is_tiny_model(path_or_id: str | os.PathLike) -> bool:
    """Whether a model folder (or a component folder inside one) was built by doge as a tiny model.

    Hub ids are looked up in the local HF cache only; this never reaches the network.
    """
    local = Path(path_or_id).expanduser()
    if local.is_dir():
        return (local / MARKER).is_file() or (local.parent / MARKER).is_file()
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(str(path_or_id), MARKER)
    except Exception:  # not a valid repo id, no cache: not a tiny model we know of
        return False
    return isinstance(found, str)


def warn_if_tiny(model: str | os.PathLike | None) -> None:
    """Say plainly, once per model, that a run uses a random tiny model: its outputs are noise."""
    if model is None or str(model) in _warned or not is_tiny_model(model):
        return
    _warned.add(str(model))
    logging.getLogger("doge").warning(
        "%s is a random tiny test model: its embeddings and images are noise, useful only to check that doge runs",
        model,
    )


_warned: set[str] = set()
