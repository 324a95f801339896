"""The gap registry: named, versioned gaps with provenance (no torch here: vectors are bytes)."""

from .registry import GapVersion, Registry

__all__ = ["Registry", "GapVersion"]
