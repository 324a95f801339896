import logging
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from doge.data.encoding import ImageFileDataset, encode_images, iter_image_batches
from doge.data.images import digest_files, discover, load_image
from doge.errors import DogeError


class FakePreprocessor:
    """PIL RGB -> [3, 16, 16] float32 in [0, 1]; module-level so worker processes can unpickle it."""

    def __call__(self, image):
        pixels = np.asarray(image.resize((16, 16)), dtype=np.float32) / 255.0
        return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()


class FakeEncoder:
    """Per-channel mean and std through a fixed linear map to D=8; follows the Encoder protocol."""

    plugin = "fake"
    model_id = "fake/mean-colour"
    dim = 8
    device = "cpu"
    dtype = torch.float32

    def __init__(self):
        self.weight = torch.linspace(-1.0, 1.0, 6 * 8).reshape(6, 8)
        self.batch_sizes = []

    def describe(self):
        return {"plugin": self.plugin, "model_id": self.model_id, "dim": self.dim}

    @property
    def preprocessor(self):
        return FakePreprocessor()

    def encode(self, pixels):
        self.batch_sizes.append(pixels.shape[0])
        features = torch.cat([pixels.mean(dim=(2, 3)), pixels.std(dim=(2, 3))], dim=1)
        return features @ self.weight


def write_colourful(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).integers(0, 255, (20, 24, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    return path


@pytest.fixture
def folder(tmp_path):
    for i in range(5):
        write_colourful(tmp_path / "cat" / f"{i}.png", seed=i)
    for i in range(4):
        write_colourful(tmp_path / "dog" / f"{i}.png", seed=10 + i)
    (tmp_path / "dog" / "bad.jpg").write_text("not a jpeg")
    (tmp_path / "cat" / "empty.png").write_bytes(b"")
    (tmp_path / "cat" / "README.txt").write_text("ignored silently")
    return tmp_path


def encode(imageset, **kwargs):
    kwargs.setdefault("workers", 0)
    kwargs.setdefault("progress", False)
    return encode_images(FakeEncoder(), imageset, **kwargs)


def test_rows_match_encoding_each_decodable_file_alone(folder):
    imageset = discover(folder)

    emb = encode(imageset, batch_size=4)

    good = [p for p in imageset.files if p.name not in ("bad.jpg", "empty.png")]
    pixels = torch.stack([FakePreprocessor()(load_image(p)) for p in good])
    expected = FakeEncoder().encode(pixels)
    assert emb.vectors.dtype == torch.float32 and emb.vectors.shape == (9, 8)
    assert torch.allclose(emb.vectors, expected, atol=1e-6)
    assert emb.files == [p.relative_to(folder).as_posix() for p in good]
    assert emb.labels == ["cat"] * 5 + ["dog"] * 4
    assert emb.folder == str(folder)


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_batch_size_does_not_change_embeddings(folder, batch_size):
    imageset = discover(folder)
    reference = encode(imageset, batch_size=2)

    emb = encode(imageset, batch_size=batch_size)

    assert torch.allclose(emb.vectors, reference.vectors, atol=1e-6)
    assert emb.files == reference.files


def test_worker_processes_give_the_same_result(folder, caplog):
    imageset = discover(folder)
    in_process = encode(imageset, batch_size=3, workers=0)
    caplog.clear()

    with caplog.at_level(logging.WARNING, logger="doge"):
        with_workers = encode(imageset, batch_size=3, workers=2)

    assert torch.equal(with_workers.vectors, in_process.vectors)
    assert with_workers.files == in_process.files
    assert with_workers.digest == in_process.digest
    assert with_workers.skipped == 2
    # warnings raised while decoding in workers still reach this process's log
    assert sum("skipping" in r.getMessage() for r in caplog.records) == 2


def test_skipped_files_are_counted_and_each_warned_once(folder, caplog):
    with caplog.at_level(logging.WARNING, logger="doge"):
        emb = encode(discover(folder), batch_size=3)

    messages = [r.getMessage() for r in caplog.records]
    assert emb.skipped == 2 and len(emb) == 9
    assert len([m for m in messages if "skipping" in m and "bad.jpg" in m]) == 1
    assert len([m for m in messages if "skipping" in m and "empty.png" in m]) == 1
    assert len([m for m in messages if "skipped 2 of 11" in m]) == 1
    assert len(messages) == 3


def test_digest_covers_the_encoded_files_and_their_bytes(folder):
    imageset = discover(folder)
    emb = encode(imageset)
    encoded = [folder / rel for rel in emb.files]
    assert emb.digest == digest_files(encoded, folder)

    write_colourful(folder / "dog" / "2.png", seed=99)

    assert encode(imageset).digest != emb.digest


def test_every_image_skipped_is_an_error(tmp_path):
    (tmp_path / "a.jpg").write_text("nope")
    (tmp_path / "b.png").write_bytes(b"")

    with pytest.raises(DogeError, match="none of the 2 images"):
        encode(discover(tmp_path))


def test_progress_bar_reports_images_per_second(folder, capsys):
    encode(discover(folder), progress=True, desc="target")
    assert "img/s" in capsys.readouterr().err

    encode(discover(folder), progress=False)
    assert capsys.readouterr().err == ""


def test_dataset_is_picklable_and_never_holds_the_encoder(folder):
    encoder = FakeEncoder()
    dataset = ImageFileDataset(discover(folder).files, encoder.preprocessor)

    restored = pickle.loads(pickle.dumps(dataset))

    index, pixels, sha, reason = restored[0]
    assert index == 0 and pixels.shape == (3, 16, 16) and len(sha) == 64 and reason is None
    assert not any(isinstance(v, FakeEncoder) for v in vars(dataset).values())


def test_iter_image_batches_yields_indices_and_reports_skips(folder):
    files = discover(folder).files
    skipped = []

    batches = list(
        iter_image_batches(
            files, FakePreprocessor(), batch_size=4, workers=0, on_skip=lambda path, reason: skipped.append(path.name)
        )
    )

    indices = [i for batch_indices, _ in batches for i in batch_indices]
    assert sorted(skipped) == ["bad.jpg", "empty.png"]
    assert [files[i].name for i in indices if files[i].name in skipped] == []
    assert len(indices) == len(files) - 2 and indices == sorted(indices)
    assert all(pixels.shape[0] == len(idx) for idx, pixels in batches)


def test_batches_stream_rather_than_load_everything(folder):
    encoder = FakeEncoder()
    encode_images(encoder, discover(folder), batch_size=4, workers=0, progress=False)
    # 11 files in batches of 4 (two bad ones drop out of their batches): never one big batch
    assert max(encoder.batch_sizes) <= 4 and sum(encoder.batch_sizes) == 9
