import io
import logging
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from doge.data.images import IMAGE_SUFFIXES, digest_files, discover, load_image
from doge.errors import DogeError, NotFound


def write_image(path, colour=(200, 30, 30), size=(16, 12), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format=fmt)
    return path


def pixel(image, xy):
    return tuple(int(v) for v in image.getpixel(xy))


# --- discovery -------------------------------------------------------------------------------


def test_flat_folder_lists_images_sorted_and_passes_over_the_rest(tmp_path):
    for name in ["b.png", "a.jpg", "C.JPEG", "d.WebP"]:
        write_image(tmp_path / name, fmt="PNG")
    (tmp_path / "README.txt").write_text("not an image")
    write_image(tmp_path / ".hidden.jpg", fmt="PNG")
    (tmp_path / "notes.json").write_text("{}")

    found = discover(tmp_path)

    assert [p.name for p in found.files] == ["C.JPEG", "a.jpg", "b.png", "d.WebP"]
    assert found.labels == [""] * 4
    assert found.root == tmp_path


def test_class_folders_give_labels_nested_images_and_root_images_class_empty(tmp_path):
    write_image(tmp_path / "cat" / "1.png")
    write_image(tmp_path / "cat" / "deeper" / "2.png")
    write_image(tmp_path / "dog" / "1.png")
    write_image(tmp_path / "loose.png")
    (tmp_path / "empty_class").mkdir()
    write_image(tmp_path / ".git" / "x.png")

    found = discover(tmp_path)

    rel = [p.relative_to(tmp_path).as_posix() for p in found.files]
    assert rel == ["cat/1.png", "cat/deeper/2.png", "dog/1.png", "loose.png"]
    assert found.labels == ["cat", "cat", "dog", ""]
    assert found.classes == ["", "cat", "dog"]


def make_classes(root, sizes):
    for label, n in sizes.items():
        for i in range(n):
            write_image(root / label / f"{i:02d}.png", colour=(i, 0, 0), size=(4, 4))


def test_limit_draws_evenly_and_small_class_gives_its_share(tmp_path):
    make_classes(tmp_path, {"a": 10, "b": 10, "c": 2})

    found = discover(tmp_path, limit=9, seed=0)

    counts = Counter(found.labels)
    assert len(found.files) == 9
    assert counts["c"] == 2
    assert sorted([counts["a"], counts["b"]]) == [3, 4]
    assert found.files == sorted(found.files)
    assert all(p.parent.name == label for p, label in zip(found.files, found.labels))


def test_limit_is_reproducible_for_a_seed_and_varies_across_seeds(tmp_path):
    make_classes(tmp_path, {"a": 10, "b": 10, "c": 2})

    first = discover(tmp_path, limit=9, seed=1)
    again = discover(tmp_path, limit=9, seed=1)
    other = discover(tmp_path, limit=9, seed=2)

    assert first.files == again.files
    assert first.files != other.files


def test_limit_at_or_above_the_count_returns_everything(tmp_path):
    make_classes(tmp_path, {"a": 3, "b": 2})
    assert len(discover(tmp_path, limit=5).files) == 5
    assert discover(tmp_path, limit=50).files == discover(tmp_path).files


def test_missing_folder_is_one_clear_error(tmp_path):
    with pytest.raises(NotFound, match="does not exist"):
        discover(tmp_path / "nope")


def test_folder_without_images_names_what_was_looked_for(tmp_path):
    (tmp_path / "README.txt").write_text("hi")
    with pytest.raises(DogeError, match=r"no images found in .*\.jpg.*\.png"):
        discover(tmp_path)


def test_bad_limit_is_refused(tmp_path):
    write_image(tmp_path / "a.png")
    with pytest.raises(DogeError, match="at least 1"):
        discover(tmp_path, limit=0)


def test_suffixes_cover_common_formats():
    assert {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"} <= IMAGE_SUFFIXES


# --- decoding awkward files ------------------------------------------------------------------


def test_exif_orientation_is_applied(tmp_path):
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 20, 20))  # left half red as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "rotated.jpg"
    stored.save(path, exif=exif, quality=95)

    image = load_image(path)

    assert image.mode == "RGB"
    assert image.size == (20, 40)
    r, _g, b = pixel(image, (10, 5))  # displayed top half is the stored left half
    assert r > 200 and b < 60


def test_rgba_is_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent red
    rgba.paste((0, 0, 255, 255), (0, 0, 4, 8))
    path = tmp_path / "alpha.png"
    rgba.save(path)

    image = load_image(path)

    assert image.mode == "RGB"
    assert pixel(image, (6, 4)) == (255, 255, 255)
    assert pixel(image, (1, 4)) == (0, 0, 255)


def test_grey_la_and_one_bit_become_rgb(tmp_path):
    Image.new("L", (6, 6), 77).save(tmp_path / "grey.png")
    Image.new("LA", (6, 6), (0, 0)).save(tmp_path / "la.png")
    Image.new("1", (6, 6), 1).save(tmp_path / "bits.png")

    assert pixel(load_image(tmp_path / "grey.png"), (0, 0)) == (77, 77, 77)
    assert pixel(load_image(tmp_path / "la.png"), (0, 0)) == (255, 255, 255)  # transparent black
    assert pixel(load_image(tmp_path / "bits.png"), (0, 0)) == (255, 255, 255)


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    values = np.full((6, 6), 128 * 257, dtype=np.uint16)
    values[0, 0] = 0
    Image.fromarray(values).save(tmp_path / "deep.png")

    image = load_image(tmp_path / "deep.png")

    assert image.mode == "RGB"
    assert pixel(image, (3, 3)) == (128, 128, 128)
    assert pixel(image, (0, 0)) == (0, 0, 0)


def test_palette_with_transparency(tmp_path):
    pal = Image.new("P", (6, 6), 0)
    pal.putpalette([0, 0, 0, 0, 255, 0] + [0] * (254 * 3))
    pal.paste(1, (0, 0, 3, 6))
    pal.save(tmp_path / "pal.png", transparency=0)

    image = load_image(tmp_path / "pal.png")

    assert pixel(image, (1, 1)) == (0, 255, 0)
    assert pixel(image, (5, 1)) == (255, 255, 255)


def test_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (8, 8), (255, 0, 0, 0)).save(tmp_path / "cmyk.jpg", quality=95)

    image = load_image(tmp_path / "cmyk.jpg")

    r, g, b = pixel(image, (4, 4))
    assert image.mode == "RGB"
    assert r < 40 and g > 200 and b > 200  # cyan


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in [(255, 0, 0), (0, 0, 255)]]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50)

    image = load_image(tmp_path / "anim.gif")

    r, _g, b = pixel(image, (4, 4))
    assert image.mode == "RGB" and r > 200 and b < 50


def truncated_jpeg(path):
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, format="JPEG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


@pytest.mark.parametrize(
    "name, make, reason",
    [
        ("x.jpg", lambda p: p.write_text("this is text, not a JPEG"), "not an image"),
        ("empty.png", lambda p: p.write_bytes(b""), "empty file"),
        ("half.jpg", truncated_jpeg, "truncated"),
    ],
)
def test_damaged_files_are_skipped_with_one_warning(tmp_path, caplog, name, make, reason):
    path = tmp_path / name
    make(path)

    with caplog.at_level(logging.WARNING, logger="doge"):
        assert load_image(path) is None

    assert len(caplog.records) == 1
    assert name in caplog.records[0].getMessage()
    assert reason in caplog.records[0].getMessage()


@pytest.mark.parametrize("side", [40, 64])  # over the limit (PIL warns) and over twice it (PIL errors)
def test_decompression_bombs_are_refused(tmp_path, caplog, monkeypatch, side):
    path = write_image(tmp_path / "bomb.png", size=(side, side))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)

    with caplog.at_level(logging.WARNING, logger="doge"):
        assert load_image(path) is None

    assert len(caplog.records) == 1
    assert "bomb.png" in caplog.records[0].getMessage()
    assert "decompression bomb" in caplog.records[0].getMessage()


# --- digests ---------------------------------------------------------------------------------


def test_digest_depends_on_bytes_and_names_not_order(tmp_path):
    a = write_image(tmp_path / "a.png", colour=(1, 2, 3))
    b = write_image(tmp_path / "b.png", colour=(4, 5, 6))

    before = digest_files([a, b], tmp_path)
    assert digest_files([b, a], tmp_path) == before

    write_image(b, colour=(7, 8, 9))
    changed = digest_files([a, b], tmp_path)
    assert changed != before

    b.rename(tmp_path / "c.png")
    assert digest_files([a, tmp_path / "c.png"], tmp_path) != changed
