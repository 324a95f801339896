"""The gap registry: named, versioned gaps with provenance (no torch here: vectors are bytes)."""

from .database import ReadOnlyRegistry
from .readable import ReadableRegistry
from .registry import GapVersion, Registry, registry_info, upgrade_registry

__all__ = ["GapVersion", "ReadOnlyRegistry", "ReadableRegistry", "Registry", "registry_info", "upgrade_registry"]
