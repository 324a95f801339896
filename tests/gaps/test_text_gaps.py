"""Gaps from text and gaps explained in words, on the tiny model's aligned CLIP text tower."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import cli

from doge.errors import DogeError

WORDS = ["--words", "300"]  # a small slice of the 10,000: quick on the CPU, same code path


def direct_text_embeds(folder, texts: list[str]) -> torch.Tensor:
    """CLIP text embeddings computed with transformers alone, as a user would check."""
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(folder)
    model = CLIPTextModelWithProjection.from_pretrained(folder).eval()
    with torch.no_grad():
        return model(**tokenizer(texts, padding=True, return_tensors="pt")).text_embeds


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


# --- the aligned text tower ------------------------------------------------------------------


def test_tiny_model_has_a_text_tower_in_its_image_encoders_space(tiny_model):
    from safetensors.torch import load_file

    from doge.data.text import build_text_encoder

    tower = build_text_encoder({"plugin": "clip", "model": str(tiny_model), "dim": 32})
    assert tower.model_id == str(tiny_model / "clip-text") and tower.dim == 32
    # The vision half of clip-text is the image encoder itself: one space for text and images.
    clip = load_file(tiny_model / "clip-text" / "model.safetensors")
    image = load_file(tiny_model / "image_encoder" / "model.safetensors")
    assert torch.equal(clip["visual_projection.weight"], image["visual_projection.weight"])
    assert torch.equal(
        clip["vision_model.embeddings.patch_embedding.weight"], image["vision_model.embeddings.patch_embedding.weight"]
    )


def test_a_text_tower_of_another_width_or_family_is_refused_in_one_line(tiny_model, tmp_path):
    from transformers import CLIPConfig, CLIPModel

    from doge.data.text import build_text_encoder

    config = CLIPModel.from_pretrained(tiny_model / "clip-text").config.to_dict()
    text, vision = dict(config["text_config"], projection_dim=16), dict(config["vision_config"], projection_dim=16)
    narrow = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    CLIPModel(narrow).save_pretrained(tmp_path / "narrow")
    (tmp_path / "narrow" / "vocab.json").write_bytes((tiny_model / "clip-text" / "vocab.json").read_bytes())
    (tmp_path / "narrow" / "merges.txt").write_bytes((tiny_model / "clip-text" / "merges.txt").read_bytes())
    gap_encoder = {"plugin": "clip", "model": str(tiny_model), "dim": 32}
    with pytest.raises(DogeError, match="width 16.*width 32.*--text-model") as err:
        build_text_encoder(gap_encoder, text_model=str(tmp_path / "narrow"))
    assert "\n" not in str(err.value)

    other = dict(config["vision_config"], patch_size=8)
    CLIPModel(CLIPConfig(text_config=config["text_config"], vision_config=other, projection_dim=32)).save_pretrained(
        tmp_path / "other"
    )
    for name in ("vocab.json", "merges.txt"):
        (tmp_path / "other" / name).write_bytes((tiny_model / "clip-text" / name).read_bytes())
    with pytest.raises(DogeError, match="another CLIP family.*patch_size 4 vs 8"):
        build_text_encoder(gap_encoder, text_model=str(tmp_path / "other"))
    with pytest.raises(DogeError, match="no text tower"):
        build_text_encoder({"plugin": "efficientnet", "model": "x", "dim": 32})


# --- gaps from text --------------------------------------------------------------------------


def test_a_text_gap_is_the_difference_of_mean_text_embeddings(tiny_model, home):
    cli(
        home,
        "gap", "create", "photo->sketch", "--model", tiny_model,
        "--src-text", "a photo of a {}", "--tgt-text", "a pencil sketch of a {}", "--classes", "cat,dog,horse",
    )  # fmt: skip
    from doge.api import load_gap

    gap = load_gap("photo->sketch", home=home)
    classes = ["cat", "dog", "horse"]
    src = direct_text_embeds(tiny_model / "clip-text", [f"a photo of a {c}" for c in classes]).mean(0)
    tgt = direct_text_embeds(tiny_model / "clip-text", [f"a pencil sketch of a {c}" for c in classes]).mean(0)
    assert torch.allclose(gap.vector, tgt - src, atol=1e-5)
    prov = gap.provenance
    assert prov["source"] == {"text": "a photo of a {}", "classes": classes, "texts": 3}
    assert prov["target"]["text"] == "a pencil sketch of a {}"
    assert prov["text_encoder"]["model"] == str(tiny_model / "clip-text")
    assert prov["encoder"]["model"] == str(tiny_model) and prov["encoder"]["dim"] == 32


def test_a_text_only_gap_records_the_image_encoder_without_loading_it(tiny_model, home, monkeypatch):
    from doge.api import build_encoder, create_text_gap
    from doge.plugins.clip_encoder import ClipEncoder

    expected = build_encoder("clip", model=str(tiny_model)).describe()

    def no_loading(self, *args, **kwargs):
        raise AssertionError("a text-only gap should not load the image encoder's weights")

    monkeypatch.setattr(ClipEncoder, "__init__", no_loading)
    gap = create_text_gap(
        "day->night", src_text="a photo by day", tgt_text="a photo at night", model=str(tiny_model), home=home
    )
    assert {k: gap.provenance["encoder"][k] for k in ("plugin", "model", "revision", "dim")} == {
        k: expected[k] for k in ("plugin", "model", "revision", "dim")
    }


def test_classes_from_a_folder_and_a_side_of_images(tiny_model, domains, home):
    from doge.api import build_encoder, create_text_gap
    from doge.data.encoding import encode_images
    from doge.data.images import discover

    classes = home.parent / "classes"
    for name in ("golden_retriever", "tabby"):
        (classes / name).mkdir(parents=True)
    gap = create_text_gap(
        "real->sketch",
        src=domains["real"],
        tgt_text="a pencil sketch of a {}",
        classes_from=classes,
        model=str(tiny_model),
        home=home,
        progress=False,
        workers=0,
    )
    texts = ["a pencil sketch of a golden retriever", "a pencil sketch of a tabby"]
    images = encode_images(build_encoder("clip", model=str(tiny_model)), discover(domains["real"]), workers=0)
    expected = direct_text_embeds(tiny_model / "clip-text", texts).mean(0) - images.vectors.mean(0)
    assert torch.allclose(gap.vector, expected, atol=1e-5)
    assert gap.provenance["source"]["images"] == len(images) and gap.provenance["target"]["classes"] == [
        "golden retriever",
        "tabby",
    ]


def test_text_gap_mistakes_are_one_line(tiny_model, home):
    result = cli(home, "gap", "create", "a->b", "--model", tiny_model, "--src-text", "a photo of a {}", "--tgt-text", "a sketch of a {}", ok=False)  # fmt: skip
    assert result.exit_code != 0 and "--classes" in result.output and "Traceback" not in result.output
    result = cli(home, "gap", "create", "a->b", "--src-text", "x", "--tgt-text", "y", "--tgt", "some/dir", ok=False)
    assert result.exit_code != 0 and "one of them" in result.output
    result = cli(home, "gap", "create", "a->b", "--src", "x", ok=False)
    assert result.exit_code != 0 and "--tgt" in result.output


def test_a_text_gap_renders_and_evaluates_like_any_gap(tiny_model, domains, home, tmp_path):
    cli(
        home, "gap", "create", "photo->sketch", "--model", tiny_model, "--src-text", "a photo", "--tgt-text", "a sketch"
    )
    out = tmp_path / "out"
    cli(
        home, "render", "--gap", "photo->sketch", "--src", domains["real"], "--out", out, "--model", tiny_model,
        "--control", "none", "--size", "64", "--steps", "2", "--limit", "1",
    )  # fmt: skip
    assert len(list((out / "images").iterdir())) == 1
    result = cli(home, "gap", "eval", "photo->sketch", "--src", domains["real"], "--tgt", domains["painting"], "--json")
    assert json.loads(result.output)["gap"].startswith("photo->sketch@v1")


# --- explain ---------------------------------------------------------------------------------


def plant(home, tiny_model, word: str, sign: float = 1.0, name: str = "planted") -> str:
    """A gap along ``word``'s (centred) text embedding in the tiny tower: explain must find ``word``."""
    from doge.gaps.explain import DEFAULT_TEMPLATE, vocabulary
    from doge.registry import Registry

    words = vocabulary(300)
    assert word in words
    emb = torch.nn.functional.normalize(
        direct_text_embeds(tiny_model / "clip-text", [DEFAULT_TEMPLATE.replace("{}", w) for w in words]), dim=1
    )
    vector = sign * (emb[words.index(word)] - emb.mean(0))
    encoder = {"plugin": "clip", "model": str(tiny_model), "revision": None, "dim": 32, "dtype": "float32"}
    reg = Registry(home=home)
    try:
        return reg.create(name, vector.numpy().astype(np.float32), {"encoder": encoder}).ref
    finally:
        reg.close()


def test_explain_ranks_a_planted_word_first_and_signs_the_ranking(tiny_model, home):
    ref = plant(home, tiny_model, "fog")
    result = json.loads(cli(home, "gap", "explain", ref, *WORDS, "--top", "5", "--json").output)
    assert result["toward_target"][0]["word"] == "fog"
    assert result["toward_target"][0]["cosine"] == pytest.approx(1.0, abs=1e-3)
    assert all(item["cosine"] < 0 for item in result["toward_source"])
    assert "fog" not in [item["word"] for item in result["toward_source"]]

    against = plant(home, tiny_model, "fog", sign=-1.0, name="unfogged")
    result = json.loads(cli(home, "gap", "explain", against, *WORDS, "--top", "5", "--json").output)
    # Signed, not absolute: a word against the gap is named as such, not among the words along it.
    assert result["toward_source"][0]["word"] == "fog"
    assert result["toward_source"][0]["cosine"] == pytest.approx(-1.0, abs=1e-3)
    assert "fog" not in [item["word"] for item in result["toward_target"]]


def test_explain_store_keeps_the_words_on_the_version_and_caches_embeddings(tiny_model, home, monkeypatch):
    ref = plant(home, tiny_model, "night")
    text = cli(home, "gap", "explain", ref, *WORDS, "--top", "3", "--store").output
    assert "toward the target" in text and "night" in text
    shown = cli(home, "gap", "show", ref).output
    assert "explain.toward-target=night (1.00)" in shown and "explain.toward-source=" in shown
    cache = list((home / "cache" / "text-embeddings").glob("*.safetensors"))
    assert len(cache) == 1

    from doge.plugins.clip_text import ClipTextEncoder

    def no_encoding(self, texts, **kwargs):
        raise AssertionError("the vocabulary should come from the cache")

    monkeypatch.setattr(ClipTextEncoder, "encode", no_encoding)
    again = json.loads(cli(home, "gap", "explain", ref, *WORDS, "--json").output)
    assert again["toward_target"][0]["word"] == "night"
    # Another template is another cache entry (and needs encoding).
    result = cli(home, "gap", "explain", ref, *WORDS, "--template", "a painting of {}", ok=False)
    assert isinstance(result.exception, AssertionError)


def test_the_vocabulary_ships_words_and_domain_phrases():
    from doge.gaps.explain import domain_phrases, vocabulary

    phrases = domain_phrases()
    for phrase in ("oil painting", "pencil sketch", "at night", "fog", "motion blur", "cartoon", "x-ray"):
        assert phrase in phrases
    words = vocabulary(10_000)
    assert len(words) >= 10_000 and "the" in words and "oil painting" in words
    assert len(vocabulary(10_000, phrases=False)) == 10_000
    assert all(w.strip() == w and w for w in words)


def test_ranking_is_signed_and_centring_removes_the_common_direction():
    from doge.gaps.explain import rank_words

    common = torch.tensor([10.0, 0.0, 0.0])  # what every text embedding shares
    words = ["along", "against", "aside"]
    emb = torch.stack([common + torch.tensor([0, 1.0, 0]), common - torch.tensor([0, 1.0, 0]), common])
    gap = torch.tensor([0.0, 1.0, 0.0])
    toward, away = rank_words(gap, emb, words, top=3)
    assert toward[0][0] == "along" and away[0][0] == "against"
    assert toward[0][1] == pytest.approx(-away[0][1])
    # Raw cosines (the paper's, without the absolute value): every word leans the same tiny way.
    raw_toward, raw_away = rank_words(gap, emb, words, top=3, center=False)
    assert raw_toward[0] == ("along", pytest.approx(0.0995, abs=1e-3)) and raw_away[0][0] == "against"
    with pytest.raises(DogeError, match="all zeros"):
        rank_words(torch.zeros(3), emb, words)
