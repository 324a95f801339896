"""The CLIP encoder plugin: same embeddings as transformers itself, from either model layout."""

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from doge.data.encoder import Encoder
from doge.errors import DogeError
from doge.plugins import clip_encoder
from doge.plugins.clip_encoder import ClipEncoder
from doge.testing import build_tiny_clip, build_tiny_unclip

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "unclip": build_tiny_unclip(root / "unclip", seed=0),
        "clip": build_tiny_clip(root / "clip", seed=1),
    }


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    rgb = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in [(48, 64), (90, 40)]]
    gray = Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8), mode="L")
    return [*rgb, gray]


def _reference(folder: Path, subfolders: tuple[str, str], images) -> torch.Tensor:
    """What a user would get by calling transformers directly."""
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    model = CLIPVisionModelWithProjection.from_pretrained(folder, subfolder=subfolders[0])
    processor = CLIPImageProcessor.from_pretrained(folder, subfolder=subfolders[1])
    pixels = processor(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        return model(pixel_values=pixels).image_embeds


@pytest.mark.parametrize(
    "layout, subfolders",
    [
        ("unclip", ("image_encoder", "feature_extractor")),
        ("clip", ("", "")),
    ],
)
def test_embeddings_match_transformers(models, layout, subfolders):
    encoder = ClipEncoder(model=str(models[layout]), device="cpu")
    images = _images()
    pixels = torch.stack([encoder.preprocessor(im) for im in images])
    got = encoder.encode(pixels)
    want = _reference(models[layout], subfolders, images)
    assert got.shape == (3, encoder.dim) and encoder.dim == 32
    assert got.dtype == torch.float32 and got.device.type == "cpu"
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(got[0], got[1])


def test_the_two_layouts_load_different_models(models):
    pixels = ClipEncoder(model=str(models["clip"])).preprocessor(_images()[0])[None]
    a = ClipEncoder(model=str(models["unclip"])).encode(pixels)
    b = ClipEncoder(model=str(models["clip"])).encode(pixels)
    assert not torch.allclose(a, b)  # seeds 0 and 1: each layout really read its own weights


def test_describe_has_provenance(models):
    encoder = ClipEncoder(model=str(models["unclip"]), device="cpu", dtype="fp32")
    assert isinstance(encoder, Encoder)
    assert encoder.describe() == {
        "plugin": "clip",
        "model": str(models["unclip"]),
        "revision": None,
        "dim": 32,
        "dtype": "float32",
    }


def test_preprocessor_pickles_without_weights(models):
    encoder = ClipEncoder(model=str(models["unclip"]))
    image = _images()[1]
    blob = pickle.dumps(encoder.preprocessor)
    assert len(blob) < 20_000  # an image processor, not a model
    again = pickle.loads(blob)
    pixels = again(image)
    assert pixels.shape == (3, 32, 32) and pixels.dtype == torch.float32
    assert torch.equal(pixels, encoder.preprocessor(image))


def test_missing_folder_is_one_line_naming_the_fix(tmp_path):
    with pytest.raises(DogeError) as err:
        ClipEncoder(model=str(tmp_path / "no-such-model"))
    message = str(err.value)
    assert "\n" not in message
    assert "no-such-model" in message and "--model" in message


def test_folder_without_a_model_is_refused(tmp_path):
    with pytest.raises(DogeError, match="neither"):
        ClipEncoder(model=str(tmp_path))


def test_doge_model_overrides_the_default(models, monkeypatch):
    monkeypatch.setenv("DOGE_MODEL", str(models["clip"]))
    assert ClipEncoder().model_id == str(models["clip"])
    monkeypatch.delenv("DOGE_MODEL")
    assert clip_encoder.default_model() == "stabilityai/stable-diffusion-2-1-unclip"


@pytest.fixture
def offline_cache(tmp_path, models, monkeypatch) -> Path:
    """An HF cache holding the tiny unCLIP model as ``doge-test/tiny-unclip``, hub unreachable."""
    import huggingface_hub.constants as hub

    repo = tmp_path / "hub" / "models--doge-test--tiny-unclip"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    shutil.copytree(models["unclip"], repo / "snapshots" / COMMIT)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    return tmp_path / "hub"


def test_hub_id_from_the_offline_cache_records_its_commit(offline_cache, models):
    encoder = ClipEncoder(model="doge-test/tiny-unclip")
    assert encoder.describe()["revision"] == COMMIT
    pixels = encoder.preprocessor(_images()[0])[None]
    assert torch.allclose(encoder.encode(pixels), ClipEncoder(model=str(models["unclip"])).encode(pixels))


def test_hub_id_not_in_the_cache_offline_names_the_fix(offline_cache):
    with pytest.raises(DogeError) as err:
        ClipEncoder(model="doge-test/not-there")
    message = str(err.value)
    assert "\n" not in message and "not found locally and no hub access" in message
    assert "doge models tiny" in message


def test_registers_as_clip():
    registered = {}
    clip_encoder.register_encoders(register=lambda name, obj: registered.setdefault(name, obj))
    assert registered == {"clip": ClipEncoder}


def test_importing_the_plugin_stays_light():
    code = (
        "import sys, doge.plugins.clip_encoder;"
        "heavy = [m for m in ('torch', 'transformers', 'diffusers') if m in sys.modules];"
        "sys.exit(' '.join(heavy) or None)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
