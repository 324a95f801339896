"""Gaps from a registry: which registry a call means, and one version loaded as a :class:`Gap`."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING

from doge.gaps.gap import Gap
from doge.runtime import Runtime

if TYPE_CHECKING:  # the registry (SQLAlchemy) is imported on first use
    from doge.registry import Registry


def registry_for(
    registry: Registry | None = None,
    home: str | os.PathLike | None = None,
    url: str | None = None,
    blobs: str | os.PathLike | None = None,
) -> Registry:
    """The registry a call names: the one given, else the one at ``home`` / ``url`` with the blob
    store ``blobs`` (each None: its default); either way its commits reach the plugins' ``gap_event`` hook."""
    from doge.pluginmanager import forward_gap_events

    if registry is not None:
        return forward_gap_events(registry)
    from doge.registry import Registry

    return forward_gap_events(Registry(home=home, url=url, blob_store=blobs))


def with_registry(runtime: Runtime) -> Runtime:
    """``runtime`` holding the registry it names, opened (see :func:`registry_for`)."""
    return replace(runtime, registry=registry_for(runtime.registry, runtime.home, runtime.url, runtime.blobs))


def load_gap(ref: str, *, registry=None, home=None, url=None) -> Gap:
    """Load one gap version (``name``, ``name@v2``, ``name@prod``) with its vector sha-checked."""
    reg = registry_for(registry, home, url)
    record = reg.resolve(ref)
    tensors = dict(reg.load_tensors(record))
    return Gap.from_record(record, tensors.pop("gap"), tensors)
