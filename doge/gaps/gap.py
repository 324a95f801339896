"""``Gap``: one stored gap version as a torch vector plus its provenance."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Gap:
    name: str
    version: int
    vector: torch.Tensor  # float32 [dim]
    provenance: dict
    sha256: str
    aliases: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""
    # Optional named tensors beside the vector (coral's transform; see doge.gaps.shifting).
    extras: dict = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"

    @property
    def dim(self) -> int:
        return int(self.vector.shape[0])

    @property
    def encoder(self) -> dict:
        return self.provenance.get("encoder", {})

    @classmethod
    def from_record(cls, record, vector, extras: dict | None = None) -> Gap:
        """Build from a registry ``GapVersion``, its numpy vector and any numpy extras."""
        return cls(
            name=record.name,
            version=record.version,
            vector=torch.from_numpy(vector.copy()),
            provenance=record.provenance,
            sha256=record.sha256,
            aliases=tuple(record.aliases),
            description=record.description,
            extras={k: torch.from_numpy(v.copy()) for k, v in (extras or {}).items()},
        )
