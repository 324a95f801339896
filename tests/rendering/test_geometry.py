"""--fit keep|crop|pad: output shapes, and that a shape drawn on a source lands where the geometry says."""

import numpy as np
import pytest
from PIL import Image

from doge.errors import DogeError
from doge.rendering.geometry import FITS, Geometry, fit_geometry

SHAPES = [(640, 480), (300, 600), (1914, 1052), (500, 500)]


def painted(width: int, height: int, box: tuple[int, int, int, int]) -> Image.Image:
    """A black image with a white COCO box (x, y, w, h)."""
    a = np.zeros((height, width), dtype=np.uint8)
    x, y, w, h = box
    a[y : y + h, x : x + w] = 255
    return Image.fromarray(a)


@pytest.mark.parametrize(("width", "height"), SHAPES)
def test_keep_gives_64_multiples_near_the_requested_area(width, height):
    g = fit_geometry(width, height, 768, "keep")
    out_w, out_h = g.output_size
    assert out_w % 64 == 0 and out_h % 64 == 0
    assert 0.8 < out_w * out_h / 768**2 < 1.25


def picture_aspect_error(g: Geometry) -> float:
    """How far the picture's aspect on the output is from the aspect of the part of the source it shows."""
    left, top, right, bottom = g.box()
    width, height = g.picture_size()
    return abs(width / height / ((right - left) / (bottom - top)) - 1)


@pytest.mark.parametrize("size", [256, 512, 768, 1024])
def test_keep_keeps_the_aspect_within_one_percent(size):
    # Each side rounded to 64 on its own made 300x600 at 512 a 384x704 output: a 9% stretch.
    rng = np.random.default_rng(size)
    shapes = [*SHAPES, (451, 300), (741, 500), (37, 23), (100, 1600), (5000, 313)]
    shapes += [tuple(int(v) for v in rng.integers(20, 3000, 2)) for _ in range(300)]
    for width, height in shapes:
        if max(width, height) > 16 * min(width, height):
            continue
        g = fit_geometry(width, height, size, "keep")
        assert picture_aspect_error(g) <= 0.01, (width, height, g)
        assert abs(g.scale[0] / g.scale[1] - 1) <= 0.01, (width, height, g)
        left, top, right, bottom = g.box()
        cut = 1 - (right - left) * (bottom - top) / (width * height)
        assert cut <= 0.125 and (g.crop is None or g.pad is None), (width, height, g)


def test_keep_picks_the_64_multiple_size_closest_in_aspect():
    assert fit_geometry(300, 600, 512, "keep").output_size == (384, 768)  # exactly 1:2, not 384x704
    g = fit_geometry(640, 480, 768, "keep")
    assert g.output_size == (832, 640) and g.crop == (8, 0, 632, 480) and g.pad is None
    assert g.map_points([(8, 0), (632, 480)]).tolist() == [[0, 0], [832, 640]]


@pytest.mark.parametrize(("width", "height"), SHAPES)
@pytest.mark.parametrize("fit", ["crop", "pad"])
def test_crop_and_pad_give_squares(width, height, fit):
    g = fit_geometry(width, height, 256, fit)
    assert g.output_size == (256, 256)
    assert g.apply(Image.new("RGB", (width, height))).size == (256, 256)


def test_crop_is_the_centre_square():
    g = fit_geometry(400, 300, 150, "crop")
    assert g.crop == (50, 0, 350, 300)
    assert g.scale == (0.5, 0.5)
    assert g.map_points([(50, 0), (350, 300)]).tolist() == [[0, 0], [150, 150]]
    assert g.map_box((0, 0, 40, 40)) is None  # cut away
    assert g.map_box((40, 10, 20, 20)) == (0.0, 5.0, 5.0, 10.0)  # clipped at the left edge


def test_pad_letterboxes():
    g = fit_geometry(400, 200, 200, "pad")
    assert g.pad == (0, 50, 0, 50)
    out = np.asarray(g.apply(Image.new("L", (400, 200), 255), fill=0))
    assert out[:50].max() == 0 and out[150:].max() == 0 and out[50:150].min() == 255


@pytest.mark.parametrize("fit", FITS)
@pytest.mark.parametrize(("width", "height"), SHAPES)
def test_a_painted_box_lands_where_map_box_says(fit, width, height):
    box = (width // 2 - width // 10, height // 2 - height // 8, width // 5, height // 4)
    g = fit_geometry(width, height, 256, fit)
    mask = np.asarray(g.apply(painted(width, height, box), Image.Resampling.NEAREST)) > 127
    ys, xs = np.nonzero(mask)
    x, y, w, h = g.map_box(box)
    assert abs(xs.min() - x) <= 1 and abs(ys.min() - y) <= 1
    assert abs(xs.max() + 1 - (x + w)) <= 1 and abs(ys.max() + 1 - (y + h)) <= 1


def test_json_round_trip_and_bad_fit():
    g = fit_geometry(1914, 1052, 768, "pad")
    assert Geometry.from_json(g.to_json()) == g
    with pytest.raises(DogeError, match="--fit 'stretch'"):
        fit_geometry(10, 10, 64, "stretch")


def test_palette_label_maps_keep_their_palette_when_padded():
    labels = Image.new("P", (40, 20), 3)
    labels.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    out = fit_geometry(40, 20, 40, "pad").apply(labels, Image.Resampling.NEAREST)
    assert out.mode == "P" and set(np.unique(np.asarray(out))) == {0, 3}
    assert out.convert("RGB").getpixel((20, 10)) == (0, 0, 255)


@pytest.mark.parametrize(("width", "height"), [(1, 10000), (10000, 1), (1, 17), (170, 10)])
def test_keep_refuses_a_strip_beyond_1_to_16_and_names_pad_or_crop(width, height):
    # 1x10000 under keep once made a 64x76800 output (a GPU's memory for one strip).
    with pytest.raises(DogeError, match=r"--fit pad.*--fit crop") as err:
        fit_geometry(width, height, 768, "keep")
    assert f"{width}x{height}" in str(err.value)
    for fit in ("crop", "pad"):
        assert fit_geometry(width, height, 768, fit).output_size == (768, 768)


@pytest.mark.parametrize(("width", "height"), [(1, 16), (16, 1), (100, 1600), (5000, 313)])
@pytest.mark.parametrize("size", [64, 768])
def test_keep_up_to_1_to_16_stays_within_a_few_times_the_square(width, height, size):
    g = fit_geometry(width, height, size, "keep")
    out_w, out_h = g.output_size
    assert out_w * out_h <= 4 * size * size
    assert max(out_w, out_h) <= 4 * size
