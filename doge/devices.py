"""Device and dtype choice: cuda, then mps, then cpu; fp16 on cuda, fp32 elsewhere."""

from __future__ import annotations

from doge.errors import DogeError

_DTYPES = {
    "fp16": "float16",
    "float16": "float16",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp32": "float32",
    "float32": "float32",
}


def pick_device(device: str | None = None) -> str:
    import torch

    if device and device != "auto":
        try:
            kind = torch.device(str(device)).type
        except (RuntimeError, TypeError, ValueError):
            raise DogeError(f"--device {device!r}: use cuda (or cuda:N), mps, cpu or auto") from None
        if kind == "cuda" and not torch.cuda.is_available():
            raise DogeError(f"--device {device} asked for, but no CUDA GPU is visible; use --device cpu")
        return str(device)
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str, dtype: str | None = None):
    import torch

    if dtype and dtype != "auto":
        if dtype not in _DTYPES:
            raise DogeError(f"unknown dtype {dtype!r}; use one of fp16, bf16, fp32")
        return getattr(torch, _DTYPES[dtype])
    return torch.float16 if device.startswith("cuda") else torch.float32
