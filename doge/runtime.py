"""``Runtime``: how and where a job runs, as one frozen value (nothing here changes a pixel).

The CLI builds it once from its shared options (``--device``, ``--dtype``, ``--batch-size``,
``--workers``, ``--quiet``, ``--home``, ``--registry``); the Python functions take it, or the same
names as keywords.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Runtime:
    """Device, dtype, batch size, workers, progress and which registry: how a job runs.

    ``device``/``dtype`` None (or ``"auto"``): the best there is (fp16 on CUDA). ``registry`` is an
    open registry; when None, the one at ``home``/``url`` (or their defaults) is opened.
    """

    device: str | None = None
    dtype: str | None = None
    batch_size: int = 4
    workers: int | None = None
    progress: bool = True
    registry: Any = None
    home: Any = None
    url: str | None = None

    @classmethod
    def names(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(cls))


def pick_values(options: dict[str, Any], names: frozenset[str]) -> dict[str, Any]:
    """The entries of ``options`` named in ``names``, removed from ``options``."""
    return {name: options.pop(name) for name in list(options) if name in names}
