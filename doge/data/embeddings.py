"""Embeddings of one side (source or target) of a gap, with what provenance needs."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Embeddings:
    vectors: torch.Tensor  # [N, D] float32 on the CPU
    labels: list[str]  # class folder of each row; "" for a flat folder
    files: list[str] = field(default_factory=list)  # relative paths of the encoded images
    folder: str = ""
    skipped: int = 0  # files that could not be decoded
    digest: str = ""  # sha256 over the encoded files' names and bytes

    def __len__(self) -> int:
        return self.vectors.shape[0]

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels))
