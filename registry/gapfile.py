"""A gap as a self-describing safetensors file: one float32 tensor ``gap`` + string metadata.

A gap may carry a few optional float32 tensors beside it, exactly those that
``doge.extras.extra_shapes`` names (``coral.transform`` [D, D], ``coral.source_mean`` [D]);
any other tensor, or one of another shape, is refused.

Files from users are checked before safetensors sees them, and pickles are never loaded.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from doge.errors import DogeError, first_line
from doge.extras import extra_shapes

if TYPE_CHECKING:
    import numpy as np

# numpy and safetensors are imported where vectors are read or written: listing a registry
# never needs them, and `doge gap list` should answer fast.

FORMAT = "doge-gap/1"
SUFFIX = ".safetensors"
TENSOR = "gap"
KEY_FORMAT = "doge.format"
KEY_NAME = "doge.name"
KEY_VERSION = "doge.version"
KEY_PROVENANCE = "doge.provenance"
KEY_DESCRIPTION = "doge.description"

_MAX_HEADER = 100 * 1024 * 1024  # the safetensors spec's own limit
_PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt", ".npy", ".npz"}
_CONVERT_HINT = (
    "save the vector with safetensors instead, e.g. safetensors.numpy.save_file({'gap': v}, 'gap.safetensors')"
)


@dataclass(frozen=True)
class GapFile:
    vector: np.ndarray  # float32 [dim]
    metadata: dict[str, str] = field(hash=False)
    extras: dict[str, np.ndarray] = field(default_factory=dict, hash=False)  # optional tensors

    @property
    def name(self) -> str | None:
        return self.metadata.get(KEY_NAME) or None

    @property
    def description(self) -> str:
        return self.metadata.get(KEY_DESCRIPTION, "")


def provenance_json(provenance: dict) -> str:
    """Canonical JSON of a provenance dict; refuses what JSON cannot hold."""
    if not isinstance(provenance, dict):
        raise DogeError(f"provenance must be a dict, got {type(provenance).__name__}")
    try:
        return json.dumps(provenance, sort_keys=True, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise DogeError(f"provenance must be JSON-able (str, numbers, lists, dicts): {e}") from None


def as_gap_vector(vector, what: str = "gap vector") -> np.ndarray:
    """``vector`` as a contiguous float32 1-D array, refusing empty, non-numeric or non-finite input."""
    import numpy as np

    try:
        arr = np.asarray(vector)
    except Exception as e:  # e.g. a tensor on a GPU
        raise DogeError(f"{what}: cannot read it as an array ({e}); pass a CPU numpy array") from None
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise DogeError(f"{what} must be 1-D and non-empty, got shape {list(arr.shape)}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise DogeError(f"{what} must be real numbers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise DogeError(f"{what} has NaN or infinite values; refusing to store it")
    return arr


def encode(
    vector, name: str, version: int, provenance: dict, description: str = "", extras: dict | None = None
) -> bytes:
    """The file bytes of a gap: the blob in the store and the exported file are these bytes."""
    metadata = {
        KEY_FORMAT: FORMAT,
        KEY_NAME: name,
        KEY_VERSION: str(version),
        KEY_PROVENANCE: provenance_json(provenance),
        KEY_DESCRIPTION: description,
    }
    from safetensors.numpy import save

    vector = as_gap_vector(vector)
    tensors = {TENSOR: vector, **checked_extras(extras, vector.shape[0], "gap extras")}
    return save(tensors, metadata=metadata)


def checked_extras(extras: dict | None, dim: int, where: str) -> dict[str, np.ndarray]:
    """The optional tensors as contiguous finite float32 arrays of the allowed names and shapes."""
    import numpy as np

    allowed = extra_shapes(dim)
    out = {}
    for key, value in (extras or {}).items():
        if key not in allowed:
            raise DogeError(
                f"{where}: unknown tensor {key!r}; a gap file may hold only {TENSOR!r} and {', '.join(map(repr, allowed))}"
            )
        arr = np.ascontiguousarray(np.asarray(value), dtype=np.float32)
        if arr.shape != allowed[key]:
            raise DogeError(f"{where}: tensor {key!r} must have shape {list(allowed[key])}, found {list(arr.shape)}")
        if not np.isfinite(arr).all():
            raise DogeError(f"{where}: tensor {key!r} has NaN or infinite values")
        out[key] = arr
    return out


def decode(data: bytes, where: str) -> GapFile:
    """Check and read gap file bytes; ``where`` (a path or ref) is named in every error."""
    header = _read_header(data, where)
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise DogeError(f"{where}: safetensors metadata must map strings to strings")
    fmt = metadata.get(KEY_FORMAT, FORMAT)
    if fmt != FORMAT:
        raise DogeError(f"{where}: gap format {fmt!r} is not {FORMAT!r}; upgrade doge to read it")
    _check_tensors(header, where)
    from safetensors.numpy import load

    try:
        tensors = load(data)
    except Exception as e:
        raise DogeError(f"{where}: not a readable safetensors file ({first_line(e)[:160]})") from None
    vector = as_gap_vector(tensors.pop(TENSOR), what=f"{where}: tensor {TENSOR!r}")
    extras = checked_extras(tensors, vector.shape[0], where)
    if KEY_PROVENANCE in metadata:
        _check_provenance(metadata[KEY_PROVENANCE], where)
    return GapFile(vector, dict(metadata), extras)


def provenance_from_text(text: str) -> dict:
    """A provenance JSON column back as a dict; {} when it is not a JSON object (another tool
    wrote the database: ``doge registry check`` lists it)."""
    try:
        value = json.loads(text or "{}")
    except (ValueError, TypeError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def provenance_of(gf: GapFile, where: str) -> dict:
    text = gf.metadata.get(KEY_PROVENANCE)
    return _check_provenance(text, where) if text else {}


def refuse_pickle_suffix(suffix: str, where: str) -> None:
    if suffix.lower() in _PICKLE_SUFFIXES:
        raise DogeError(f"{where}: {suffix} files may hold pickles, which doge never loads; {_CONVERT_HINT}")


def _check_provenance(text: str, where: str) -> dict:
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except _NotFinite as e:
        raise DogeError(
            f"{where}: metadata {KEY_PROVENANCE!r} holds {e}, which JSON cannot carry; nothing was stored"
        ) from None
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deep to be a provenance
        value = None
    if not isinstance(value, dict):
        raise DogeError(f"{where}: metadata {KEY_PROVENANCE!r} is not a JSON object")
    return value


class _NotFinite(ValueError):
    pass


def _refuse_constant(name: str):
    raise _NotFinite(name)


def _read_header(data: bytes, where: str) -> dict:
    """The safetensors JSON header, read by hand so nothing else parses a foreign file first."""
    n = struct.unpack("<Q", data[:8])[0] if len(data) >= 8 else 0
    if not (2 <= n <= _MAX_HEADER and 8 + n <= len(data) and data[8:9] == b"{"):
        # Not laid out as safetensors: name what it is, where we can. Sniffed only here, because a
        # safetensors header of 896 bytes starts with the bytes 80 03, as a pickle does.
        kind = _sniff_foreign(data)
        if kind:
            raise DogeError(f"{where} is {kind}, not safetensors; doge never unpickles files; {_CONVERT_HINT}")
        raise DogeError(f"{where} is not a safetensors file (bad header); {_CONVERT_HINT}")
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        header = None
    if not isinstance(header, dict):
        raise DogeError(f"{where} is not a safetensors file (bad header); {_CONVERT_HINT}")
    return header


def _sniff_foreign(data: bytes) -> str | None:
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle"
    if data[:4] == b"PK\x03\x04":
        return "a zip archive (a torch.save .pt file holds pickles)"
    if data[:6] == b"\x93NUMPY":
        return "a numpy .npy file"
    return None


def _check_tensors(header: dict, where: str) -> None:
    names = sorted(header)
    extra = [n for n in names if n != TENSOR]
    if TENSOR not in header or any(n not in extra_shapes(1) for n in extra):
        raise DogeError(
            f"{where}: a gap file holds exactly one tensor named {TENSOR!r} (plus, optionally, "
            f"{' and '.join(map(repr, extra_shapes(1)))}), found {len(names)}: {', '.join(map(repr, names)) or 'none'}"
        )
    for name in extra:  # shapes are checked against the gap's width once it is read
        if not isinstance(header[name], dict) or header[name].get("dtype") != "F32":
            raise DogeError(f"{where}: tensor {name!r} must be float32 (F32)")
    info = header[TENSOR]
    if not isinstance(info, dict):
        raise DogeError(f"{where}: bad entry for tensor {TENSOR!r}")
    if info.get("dtype") != "F32":
        raise DogeError(f"{where}: tensor {TENSOR!r} must be float32 (F32), found {info.get('dtype')}")
    shape = info.get("shape")
    if not isinstance(shape, list) or len(shape) != 1 or not shape[0]:
        raise DogeError(f"{where}: tensor {TENSOR!r} must be 1-D and non-empty, found shape {shape}")
