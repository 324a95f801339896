"""The plugin contract: everything a doge plugin imports, from one module.

::

    from doge.plugin import Control, DogeError, Geometry, hookimpl

    class Posterize(Control):
        name = "posterize"
        defaults = {"bits": 2}

        def compute(self, image, size):
            ...

    @hookimpl
    def register_controls(register):
        register("posterize", Posterize)

The hooks themselves are specified in :mod:`doge.hooks`; the built-in plugins (``doge.plugins``)
import only from here, as a third-party plugin does, and an import-linter contract holds them to
it. Importing this module stays cheap (no torch, numpy or transformers): the plugin manager loads
every plugin even for ``doge --help``. ``Embeddings`` and ``estimators`` (doge's own estimator
maths, to build on) import torch, so they are loaded on first use.

Test a plugin with the tiny random models of :mod:`doge.testing`.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING, Any

from doge.atomic import write_atomic
from doge.data.clip_pixels import clip_pixels, load_processor
from doge.data.encoder import Encoder
from doge.data.encoder import describe as describe_encoder
from doge.devices import pick_device, pick_dtype
from doge.errors import DogeError, IntegrityError, NotFound, first_line
from doge.hooks import hookimpl
from doge.hub import (
    ModelSource,
    default_model,
    quiet_loading,
    quiet_transformers,
    require_config,
    resolve_source,
    warn_if_tiny,
)
from doge.rendering.control import MAP_SUFFIXES, Control, gray_to_rgb, letterbox, stretch_to_8bit, to_uint8
from doge.rendering.geometry import Geometry

if TYPE_CHECKING:  # loaded on first use (they import torch); mypy sees them as usual
    from doge.data.embeddings import Embeddings
    from doge.gaps import estimators

Estimator = Callable[..., Any]
"""A gap estimator: ``fn(src: Embeddings, tgt: Embeddings, **options) -> (vector, params)`` or
``(vector, params, extras)``, registered with ``register_estimators`` (see :mod:`doge.hooks`)."""

_LAZY = {"Embeddings": ("doge.data.embeddings", "Embeddings"), "estimators": ("doge.gaps.estimators", None)}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        loaded = import_module(module)
        return loaded if attr is None else getattr(loaded, attr)
    raise AttributeError(f"module 'doge.plugin' has no attribute {name!r}")


__all__ = [
    "MAP_SUFFIXES",
    "Control",
    "DogeError",
    "Embeddings",
    "Encoder",
    "Estimator",
    "Geometry",
    "IntegrityError",
    "ModelSource",
    "NotFound",
    "clip_pixels",
    "default_model",
    "describe_encoder",
    "estimators",
    "first_line",
    "gray_to_rgb",
    "hookimpl",
    "letterbox",
    "load_processor",
    "pick_device",
    "pick_dtype",
    "quiet_loading",
    "quiet_transformers",
    "require_config",
    "resolve_source",
    "stretch_to_8bit",
    "to_uint8",
    "warn_if_tiny",
    "write_atomic",
]
