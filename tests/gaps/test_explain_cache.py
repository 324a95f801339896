"""The vocabulary cache of `doge gap explain` (DOGE_HOME/cache/text-embeddings) is checked before use:
an entry that is not finite, not float32 or not the expected shape is recomputed, never used."""

import pytest
import torch
from safetensors.torch import save

from doge.gaps.explain import embed_vocabulary

WORDS = ["oil", "sketch", "photo"]


class StubTextEncoder:
    """A text encoder as explain uses one: fixed embeddings, and a count of what it encoded."""

    model_id, revision, dim = "stub/text-encoder", "r1", 4

    def __init__(self):
        self.calls = 0

    def encode(self, texts, progress=False, desc=""):
        self.calls += 1
        return torch.arange(len(texts) * self.dim, dtype=torch.float32).reshape(len(texts), self.dim) + 1


def cache_file(home):
    files = list((home / "cache" / "text-embeddings").glob("*.safetensors"))
    assert len(files) == 1
    return files[0]


@pytest.mark.parametrize(
    "bad",
    [
        torch.full((3, 4), float("nan")),
        torch.tensor([[1.0, float("inf"), 0, 0]] * 3),
        torch.ones(3, 4, dtype=torch.int32),
        torch.ones(3, 4, dtype=torch.float64),
        torch.ones(2, 4),
        torch.ones(3, 5),
    ],
    ids=["nan", "inf", "int", "float64", "rows", "width"],
)
def test_a_damaged_cached_embedding_is_recomputed(tmp_path, bad):
    encoder = StubTextEncoder()
    fresh = embed_vocabulary(encoder, WORDS, home=tmp_path)
    path = cache_file(tmp_path)
    assert embed_vocabulary(encoder, WORDS, home=tmp_path).equal(fresh) and encoder.calls == 1  # cached
    path.write_bytes(save({"embeddings": bad.contiguous()}))
    again = embed_vocabulary(encoder, WORDS, home=tmp_path)
    assert encoder.calls == 2 and again.equal(fresh) and bool(torch.isfinite(again).all())
    assert embed_vocabulary(encoder, WORDS, home=tmp_path).equal(fresh) and encoder.calls == 2  # rewritten
