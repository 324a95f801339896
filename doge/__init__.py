"""doge: Domain Gap Embeddings as a tool.

The public API is imported lazily so that ``import doge`` (and the CLI's fast paths) do not
import torch.
"""

from __future__ import annotations

from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "Registry": "doge.registry",
    "Gap": "doge.gaps.gap",
    "load_gap": "doge.api",
    "create_gap": "doge.api",
    "create_text_gap": "doge.api",
    "render": "doge.api",
    "augment": "doge.api",
    "preview": "doge.api",
    "evaluate_gap": "doge.quality.evaluate",
    "filter_outputs": "doge.quality.filtering",
    "RenderSettings": "doge.rendering.settings",
    "Runtime": "doge.runtime",
    "DogeError": "doge.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'doge' has no attribute {name!r}")
