"""``Runtime``: how and where a job runs, as one frozen value (nothing here changes a pixel or a
vector), and the folding of keywords into such values.

The CLI builds a ``Runtime`` once from its shared options (``--device``, ``--dtype``,
``--batch-size``, ``--workers``, ``--ray``, ``--quiet``, ``--home``, ``--registry``); the Python
functions take it, or the same names as keywords (``doge.create_gap(..., device="cpu")``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any

from doge.errors import DogeError, whole


@dataclass(frozen=True)
class Runtime:
    """Device, dtype, batch size, workers, Ray, progress and which registry: how a job runs.

    ``device``/``dtype`` None (or ``"auto"``): the best there is (fp16 on CUDA). ``batch_size``
    None: the job's own default (:meth:`batch`). ``ray`` ("local", "auto", ``ray://HOST:PORT``)
    runs the job's batches on Ray. ``registry`` is an open registry; when None, the one at
    ``home``/``url`` (with the blob store ``blobs``; each None: its default) is opened when the
    job first needs it, after its arguments are checked.
    """

    device: str | None = None
    dtype: str | None = None
    batch_size: int | None = None
    workers: int | None = None
    ray: str | None = None
    progress: bool = True
    registry: Any = None
    home: Any = None
    url: str | None = None
    blobs: str | None = None

    def __post_init__(self) -> None:
        for name, least in (("batch_size", 1), ("workers", 0)):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, whole(getattr(self, name), name, least))
        if self.ray is not None and (not isinstance(self.ray, str) or not self.ray.strip()):
            raise DogeError(f"ray {self.ray!r}: give 'local', 'auto' or a cluster address ray://HOST:PORT")
        if isinstance(self.registry, str | bytes | os.PathLike):
            raise DogeError(
                f"registry {self.registry!r}: give an open Registry, or its folder as home= or its URL as url="
            )

    def batch(self, default: int) -> int:
        """The batch size: the one given, else the job's ``default`` (4 renders, 32 encodings)."""
        return self.batch_size if self.batch_size is not None else default


def field_names(cls: type) -> frozenset[str]:
    """The fields of the dataclass ``cls``: the keywords that fold into it."""
    return frozenset(f.name for f in fields(cls))


def fold_keywords(what: str, keywords: dict[str, Any], *values: tuple[type, Any]) -> list[Any]:
    """Each ``(cls, value)`` of ``values`` with the ``keywords`` that name its fields applied
    (``value`` None: ``cls``'s defaults); a keyword that names no field of any is refused in one line.

    This keeps the Python API keyword-friendly (``doge.render(gaps, src, out, steps=20,
    device="cpu")``) while each function takes its values. The values' field names are distinct,
    so each keyword has one home.
    """
    known = set().union(*(field_names(cls) for cls, _ in values))
    unknown = sorted(set(keywords) - known)
    if unknown:  # before any value is made: a typo is named, not hidden behind another value's check
        raise DogeError(f"{what}() got unknown option(s) {', '.join(unknown)}; it takes: {', '.join(sorted(known))}")
    folded = []
    for cls, value in values:
        if value is not None and not isinstance(value, cls):
            raise DogeError(
                f"{what}() takes a {cls.__name__} ({cls.__module__}.{cls.__name__}) there, got "
                f"{type(value).__name__}: make one, or give its fields as keywords"
            )
        mine = {name: given for name, given in keywords.items() if name in field_names(cls)}
        made: Any = value  # a dataclass instance of cls (checked above), or None
        if made is None:
            folded.append(cls(**mine))
        else:
            folded.append(replace(made, **mine) if mine else made)
    return folded


def runtime_from_keywords(
    runtime: Runtime | None, keywords: dict[str, Any], what: str, unused: tuple[str, ...] = ()
) -> Runtime:
    """``runtime`` (or the defaults) with the keywords that name its fields (``device="cpu"``);
    a field in ``unused`` that is set is refused (see :func:`refuse_unused`)."""
    (folded,) = fold_keywords(what, keywords, (Runtime, runtime))
    refuse_unused(folded, what, unused)
    return folded


def refuse_unused(runtime: Runtime, what: str, names: tuple[str, ...]) -> None:
    """Refuse, in one line, a runtime setting ``what`` has no use for (an encoder runs in float32:
    ``dtype=`` would be ignored), rather than take it silently."""
    given = [name for name in names if getattr(runtime, name) is not None]
    if given:
        raise DogeError(f"{what}() does not use {', '.join(f'{n}=' for n in given)}; leave it out")
