"""The tiny random models: they load like real ones, render, and are reproducible."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import UNCLIP_COMPONENTS
from PIL import Image

from doge.testing import MARKER, build_tiny_clip, build_tiny_unclip, is_tiny_model


@pytest.fixture(scope="module")
def unclip_dir(tmp_path_factory) -> Path:
    return build_tiny_unclip(tmp_path_factory.mktemp("tiny") / "unclip", seed=0)


@pytest.fixture(scope="module")
def pipe(unclip_dir):
    from diffusers import StableUnCLIPImg2ImgPipeline

    return StableUnCLIPImg2ImgPipeline.from_pretrained(unclip_dir)


def _weights(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.safetensors"))}


def _image(seed: int, size=(64, 64)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8))


def test_unclip_folder_has_all_components_in_safetensors(unclip_dir):
    index = json.loads((unclip_dir / "model_index.json").read_text())
    assert index["_class_name"] == "StableUnCLIPImg2ImgPipeline"
    assert set(UNCLIP_COMPONENTS) <= set(index)
    # Named as in real unCLIP models, so the folder loads with any transformers version.
    assert index["feature_extractor"] == ["transformers", "CLIPImageProcessor"]
    assert (unclip_dir / "tokenizer" / "vocab.json").is_file()
    assert (unclip_dir / "tokenizer" / "merges.txt").is_file()
    weights = {p.parent.name for p in unclip_dir.rglob("*.safetensors")}
    assert {"image_encoder", "text_encoder", "unet", "vae", "controlnet"} <= weights
    assert not list(unclip_dir.rglob("*.bin")) and not list(unclip_dir.rglob("*.pt"))


def test_pipeline_reloads_and_renders_two_steps_at_64px(pipe):
    assert pipe.unet.config.class_embed_type == "projection"
    embed_dim = pipe.image_encoder.config.projection_dim
    assert pipe.unet.config.projection_class_embeddings_input_dim == 2 * embed_dim
    assert pipe.tokenizer.model_max_length == 77
    ids = pipe.tokenizer("a painting", padding="max_length", max_length=77)["input_ids"]
    assert len(ids) == 77
    out = pipe(
        image=_image(0),
        prompt="a painting",
        num_inference_steps=2,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(0),
    )
    assert out.images[0].size == (64, 64)


def test_controlnet_fits_the_unet_and_starts_silent(unclip_dir, pipe):
    from diffusers import ControlNetModel

    controlnet = ControlNetModel.from_pretrained(unclip_dir / "controlnet")
    latents = torch.randn(1, pipe.unet.config.in_channels, 8, 8)
    text = torch.randn(1, 77, pipe.unet.config.cross_attention_dim)
    label = torch.randn(1, pipe.unet.config.projection_class_embeddings_input_dim)
    control = torch.rand(1, 3, 64, 64)  # full-size control image for 8x8 latents
    with torch.no_grad():
        down, mid = controlnet(
            latents,
            10,
            encoder_hidden_states=text,
            controlnet_cond=control,
            class_labels=label,
            return_dict=False,
        )
        plain = pipe.unet(latents, 10, encoder_hidden_states=text, class_labels=label).sample
        guided = pipe.unet(
            latents,
            10,
            encoder_hidden_states=text,
            class_labels=label,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
        ).sample
    assert all(float(r.abs().max()) == 0.0 for r in [*down, mid])
    assert torch.equal(plain, guided)


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path, unclip_dir):
    again = build_tiny_unclip(tmp_path / "again", seed=0)
    other = build_tiny_unclip(tmp_path / "other", seed=1)
    first = _weights(unclip_dir)
    assert len(first) >= 6
    assert _weights(again) == first
    changed = _weights(other)
    for name in ("unet/diffusion_pytorch_model.safetensors", "image_encoder/model.safetensors"):
        assert changed[name] != first[name]


def test_building_leaves_the_callers_rng_alone(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_clip(tmp_path / "clip", seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_plain_clip_folder_loads_like_an_openai_clip(tmp_path):
    from transformers import CLIPVisionModelWithProjection

    folder = build_tiny_clip(tmp_path / "clip")
    assert (folder / "config.json").is_file() and (folder / "preprocessor_config.json").is_file()
    model = CLIPVisionModelWithProjection.from_pretrained(folder)
    assert model.config.projection_dim == 32


def test_marker_says_tiny_and_is_found(unclip_dir, tmp_path):
    assert "noise" in (unclip_dir / MARKER).read_text()
    assert is_tiny_model(unclip_dir)
    assert is_tiny_model(str(unclip_dir / "controlnet"))
    assert not is_tiny_model(tmp_path)
    assert not is_tiny_model("stabilityai/stable-diffusion-2-1-unclip")


def test_the_tiny_depth_model_is_seeded_without_touching_the_callers_rng(tmp_path):
    import torch
    from safetensors.torch import load_file

    from doge.testing import build_tiny_depth

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = build_tiny_depth(tmp_path / "a", seed=0)
    assert torch.equal(torch.rand(3), expected)  # the caller's RNG goes on where it was
    b, c = build_tiny_depth(tmp_path / "b", seed=0), build_tiny_depth(tmp_path / "c", seed=1)
    wa, wb, wc = (load_file(p / "model.safetensors") for p in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)
