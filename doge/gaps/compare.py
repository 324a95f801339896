"""Comparing two gaps: direction, length and where their provenance differs (numpy only)."""

from __future__ import annotations

import numpy as np

from doge.errors import DogeError

# Fields that differ between any two versions and say nothing about how they were made.
_IGNORED = {"created_at"}


def flatten(tree: dict, prefix: str = "") -> dict:
    flat: dict = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def provenance_differences(a: dict, b: dict) -> dict:
    fa, fb = flatten(a), flatten(b)
    return {
        key: [fa.get(key), fb.get(key)]
        for key in sorted(set(fa) | set(fb))
        if key not in _IGNORED and fa.get(key) != fb.get(key)
    }


def cosine(a, b) -> float:
    """The cosine of two vectors (numpy arrays or CPU tensors), in float64.

    NaN when either is the zero vector: it has no direction, and 0.0 would read as "orthogonal".
    """
    a64, b64 = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    na, nb = float(np.linalg.norm(a64)), float(np.linalg.norm(b64))
    return float(a64 @ b64 / (na * nb)) if na > 0 and nb > 0 else float("nan")


def gap_diff(a_ref: str, a_vec: np.ndarray, a_prov: dict, b_ref: str, b_vec: np.ndarray, b_prov: dict) -> dict:
    if a_vec.shape != b_vec.shape:
        raise DogeError(
            f"{a_ref} has width {a_vec.shape[0]} and {b_ref} has width {b_vec.shape[0]}: "
            "gaps from different encoders cannot be compared"
        )
    a64, b64 = a_vec.astype(np.float64), b_vec.astype(np.float64)
    na, nb = float(np.linalg.norm(a64)), float(np.linalg.norm(b64))
    return {
        "a": a_ref,
        "b": b_ref,
        "cosine": cosine(a64, b64),
        "norm_a": na,
        "norm_b": nb,
        "norm_ratio": nb / na if na > 0 else float("nan"),
        "l2_distance": float(np.linalg.norm(a64 - b64)),
        "provenance_differences": provenance_differences(a_prov, b_prov),
    }
