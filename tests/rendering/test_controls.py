"""Control modes for render: canny, depth, seg, none, and maps read from --control-dir."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from doge.errors import DogeError
from doge.plugins.controls import CannyControl, DepthControl, NoControl, SegControl
from doge.sample_data import edge_pictures
from doge.testing import build_tiny_depth

OUT_W, OUT_H = 128, 96  # not square, so a swapped (w, h) shows


def square_image(inside=255, outside=0, size=64, lo=16, hi=48) -> Image.Image:
    """A bright square on a dark ground, as RGB."""
    a = np.full((size, size, 3), outside, dtype=np.uint8)
    a[lo:hi, lo:hi] = inside
    return Image.fromarray(a)


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img)


@pytest.fixture(scope="module")
def tiny_depth(tmp_path_factory) -> Path:
    return build_tiny_depth(tmp_path_factory.mktemp("tiny-depth"), seed=0)


# --- canny -----------------------------------------------------------------------------------


def test_canny_edges_lie_on_the_square_border_at_the_output_size():
    # Larger than the 224-px CLIP view: blown up to it, a 64-px square's borders are too soft for
    # Canny at the paper's 100/800 (the paper's map, and so auto's, is then empty).
    out = CannyControl().make(square_image(size=256, lo=64, hi=192), (OUT_W, OUT_H), Path("a.jpg"))
    a = pixels(out)
    assert out.mode == "RGB" and out.size == (OUT_W, OUT_H)
    assert (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()
    edges = a[..., 0] > 0
    # The 64-px square 16..48 maps to x 32..96 and y 24..72 at 128x96.
    for y in range(30, 66):
        assert edges[y, 29:36].any(), f"no left edge in row {y}"
        assert edges[y, 92:99].any(), f"no right edge in row {y}"
    for x in range(38, 90):
        assert edges[21:28, x].any() and edges[68:75, x].any(), f"no top/bottom edge in column {x}"
    assert not edges[30:66, 40:88].any(), "edges inside the flat square"
    assert not edges[:16, :].any() and not edges[80:, :].any() and not edges[:, :24].any()


def test_canny_thresholds_change_the_result():
    # A bright square and, beside it, a faint one: the image's range is set by the bright one.
    a = np.zeros((256, 256, 3), dtype=np.uint8)  # larger than the CLIP view, as real sources are
    a[32:96, 32:96] = 255
    a[144:224, 144:224] = 20
    both = Image.fromarray(a)
    default = pixels(CannyControl().make(both, (OUT_W, OUT_H), Path("a.jpg")))[..., 0] > 0
    sensitive = pixels(CannyControl(low=10, high=40).make(both, (OUT_W, OUT_H), Path("a.jpg")))[..., 0] > 0
    assert default[:56].any(), "the bright square's edges"
    assert not default[64:].any(), "the paper's thresholds (100, 800) should ignore the faint square"
    assert sensitive[64:].sum() > 50


def test_a_low_contrast_photo_is_stretched_as_the_paper_does():
    faint = square_image(inside=70, outside=40, size=256, lo=64, hi=192)  # stretched before Canny
    for maps in ("auto", "paper"):
        edges = pixels(CannyControl(maps=maps).make(faint, (448, 448), Path("a.jpg")))[..., 0] > 127
        assert edges.sum() > 1000, maps


def test_canny_options_default_and_none_means_default():
    control = CannyControl(low=None, high=None)
    assert control.options == {"low": 100, "high": 800, "maps": "auto"}
    assert control.describe()["options"] == {"low": 100, "high": 800, "maps": "auto"}
    assert control.describe()["name"] == "canny"


def test_canny_rejects_bad_thresholds_and_unknown_options():
    with pytest.raises(DogeError, match="canny-low"):
        CannyControl(low=300, high=200)
    with pytest.raises(DogeError, match="no option threshold"):
        CannyControl(threshold=5)


# --- depth -----------------------------------------------------------------------------------


def test_depth_with_tiny_model_gives_a_varied_rgb_map_of_the_output_size(tiny_depth):
    img = Image.fromarray((np.random.default_rng(0).random((50, 70, 3)) * 255).astype(np.uint8))
    control = DepthControl(model=str(tiny_depth))
    out = control.make(img, (OUT_W, OUT_H), Path("a.jpg"))
    a = pixels(out)
    assert out.mode == "RGB" and out.size == (OUT_W, OUT_H)
    assert (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()
    assert a.min() == 0 and a.max() == 255  # normalised to the full range
    assert len(np.unique(a)) > 20

    again = pixels(control.make(img, (OUT_W, OUT_H), Path("a.jpg")))
    fresh = pixels(DepthControl(model=str(tiny_depth)).make(img, (OUT_W, OUT_H), Path("a.jpg")))
    assert np.array_equal(a, again) and np.array_equal(a, fresh)

    other = pixels(control.make(square_image(), (OUT_W, OUT_H), Path("b.jpg")))
    assert not np.array_equal(a, other)
    assert control.describe()["model"] == str(tiny_depth)


def test_depth_model_is_loaded_once_per_control(tiny_depth, monkeypatch):
    from doge.plugins.controls import depth

    calls = []
    real = depth.load_depth_model
    monkeypatch.setattr(depth, "load_depth_model", lambda *a: calls.append(a) or real(*a))
    control = DepthControl(model=str(tiny_depth))
    for _ in range(3):
        control.make(square_image(), (32, 32), Path("a.jpg"))
    assert len(calls) == 1


def test_depth_model_that_cannot_be_found_is_a_one_line_error(tmp_path):
    control = DepthControl(model=str(tmp_path / "no-such-model"))
    with pytest.raises(DogeError) as err:
        control.make(square_image(), (32, 32), Path("a.jpg"))
    message = str(err.value)
    assert "not found locally" in message and "--depth-model" in message and "--control-dir" in message
    assert "\n" not in message


def test_depth_from_control_dir_needs_no_model(tmp_path):
    ramp = np.tile(np.linspace(0, 255, 16).astype(np.uint8), (8, 1))
    Image.fromarray(ramp).save(tmp_path / "a.png")
    control = DepthControl(control_dir=tmp_path, model=str(tmp_path / "no-such-model"))
    out = control.make(square_image(), (64, 32), Path("src/a.jpg"))
    assert out.mode == "RGB" and out.size == (64, 32)
    assert "model" not in control.describe() and control.describe()["control_dir"] == str(tmp_path)


def test_sixteen_bit_depth_map_is_stretched_to_8_bits(tmp_path):
    deep = np.array([[1000, 2000], [3000, 60000]], dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "a.png")
    a = pixels(DepthControl(control_dir=tmp_path).make(square_image(), (2, 2), Path("a.jpg")))
    assert a[0, 0, 0] == 0 and a[1, 1, 0] == 255 and 0 < a[0, 1, 0] < a[1, 0, 0] < 255


# --- control_dir -----------------------------------------------------------------------------


def two_tone_map(path: Path) -> np.ndarray:
    """A 4x4 map, left half black, right half white; saved at ``path``."""
    a = np.zeros((4, 4), dtype=np.uint8)
    a[:, 2:] = 255
    Image.fromarray(a).save(path)
    return a


def test_control_dir_map_is_matched_by_stem_and_resized(tmp_path):
    two_tone_map(tmp_path / "a.png")
    Image.new("RGB", (4, 4), (9, 9, 9)).save(tmp_path / "b.png")  # another source's map
    out = CannyControl(control_dir=tmp_path).make(square_image(), (OUT_W, OUT_H), Path("photos/a.jpg"))
    a = pixels(out)
    assert out.mode == "RGB" and out.size == (OUT_W, OUT_H)
    assert (a[:, : OUT_W // 4] == 0).all() and (a[:, -OUT_W // 4 :] == 255).all()
    # Edges and depth resize bilinearly: the seam gets in-between values.
    assert ((a > 0) & (a < 255)).any()


def test_control_dir_prefers_a_lossless_map(tmp_path):
    Image.new("L", (4, 4), 200).save(tmp_path / "a.jpg")
    Image.new("L", (4, 4), 50).save(tmp_path / "a.png")
    a = pixels(CannyControl(control_dir=tmp_path).make(square_image(), (4, 4), Path("a.jpg")))
    assert (a == 50).all()


def test_missing_map_error_names_the_source_file_and_folder(tmp_path):
    two_tone_map(tmp_path / "a.png")
    with pytest.raises(DogeError) as err:
        DepthControl(control_dir=tmp_path).make(square_image(), (8, 8), Path("photos/b.jpg"))
    assert "b.jpg" in str(err.value) and str(tmp_path) in str(err.value)


def test_control_dir_that_is_not_a_folder_is_an_error(tmp_path):
    with pytest.raises(DogeError, match="not a folder"):
        CannyControl(control_dir=tmp_path / "nope")


# --- seg -------------------------------------------------------------------------------------


def test_seg_resizes_with_nearest_so_only_input_labels_appear(tmp_path):
    colours = np.array([[0, 0, 0], [120, 120, 120], [255, 0, 0], [4, 200, 3]], dtype=np.uint8)
    labels = np.random.default_rng(1).integers(0, 4, size=(7, 9))
    Image.fromarray(colours[labels]).save(tmp_path / "a.png")
    out = SegControl(control_dir=tmp_path).make(square_image(), (50, 31), Path("a.jpg"))
    assert out.mode == "RGB" and out.size == (50, 31)
    seen = {tuple(c) for c in pixels(out).reshape(-1, 3)}
    assert seen == {tuple(c) for c in colours}


def test_seg_palette_map_becomes_its_colours(tmp_path):
    pal = Image.new("P", (2, 1))
    pal.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    pal.putdata([0, 1])
    pal.save(tmp_path / "a.png")
    a = pixels(SegControl(control_dir=tmp_path).make(square_image(), (4, 2), Path("a.jpg")))
    assert tuple(a[0, 0]) == (10, 20, 30) and tuple(a[0, 3]) == (200, 100, 50)


def test_seg_without_control_dir_is_an_error():
    with pytest.raises(DogeError, match="--control-dir"):
        SegControl()


def test_seg_defaults_to_the_sd21_ade20k_controlnet(tmp_path):
    control = SegControl(control_dir=tmp_path)
    assert control.resolve_controlnet(None) == "thibaud/controlnet-sd21-ade20k-diffusers"
    assert control.resolve_controlnet("my/seg-controlnet") == "my/seg-controlnet"
    assert CannyControl().resolve_controlnet() == "thibaud/controlnet-sd21-canny-diffusers"
    assert DepthControl().resolve_controlnet() == "thibaud/controlnet-sd21-depth-diffusers"


# --- none ------------------------------------------------------------------------------------


def test_none_makes_no_map_and_uses_no_controlnet():
    control = NoControl()
    assert control.make(square_image(), (OUT_W, OUT_H), Path("a.jpg")) is None
    assert control.resolve_controlnet() is None and control.default_controlnet is None
    with pytest.raises(DogeError):
        control.resolve_controlnet("some/controlnet")


# --- registration ----------------------------------------------------------------------------


def test_the_hook_registers_the_four_controls():
    from doge import pluginmanager

    table = pluginmanager.table("controls")
    expected = {"canny": CannyControl, "depth": DepthControl, "seg": SegControl, "none": NoControl}
    for name, cls in expected.items():
        assert table[name].obj is cls
        assert table[name].plugin == "doge.plugins.controls"
        assert cls.name == name


def test_importing_the_controls_plugin_stays_light():
    code = (
        "import sys, doge.plugins.controls\n"
        "print(','.join(m for m in ('torch', 'transformers', 'cv2') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


# --- canny maps against the paper's construction ------------------------------------------------

# Photos, drawings, a texture, text, stars, line art, dark, flat and faint pictures (32 in all).
PICTURES = dict(edge_pictures())
# Ten of every kind for the exact comparison (the rest and more sizes: benchmarks/edge_density.py).
EXACT = ("rocket", "chelsea", "moon", "page", "brick", "horse", "noise", "written", "stars", "dark", "flat", "fog")


def picture(name: str) -> Image.Image:
    return Image.fromarray(PICTURES[name])


def edge_count(made) -> int:
    return int((np.asarray(made)[..., 0] > 127).sum())


def crop_map(name: str, size: int, **options) -> np.ndarray:
    from doge.rendering.geometry import fit_geometry

    image = picture(name)
    g = fit_geometry(*image.size, size, "crop")
    return np.asarray(CannyControl(**options).make(image, g.output_size, Path(f"{name}.png"), geometry=g))


@pytest.mark.parametrize("name", EXACT)
def test_paper_maps_are_the_papers_construction_pixel_for_pixel(name):
    """--canny-maps paper at --fit crop is generate.py's map: normalised CLIP pixels, float16 stretch,
    truncation, colour Canny, the pipeline's Lanczos (reference: tests/rendering/paper_reference.py)."""
    from paper_reference import paper_canny

    for size in (512, 768):
        assert np.array_equal(crop_map(name, size, maps="paper"), paper_canny(picture(name), size)), size


def test_paper_stretch_is_the_papers_float16_arithmetic():
    """Stretching raw pixels (doge before) or rounding instead of truncating gives other bytes."""
    from doge.plugins.controls.canny import clip_view, paper_stretch

    view = clip_view(picture("rocket"))
    ours = paper_stretch(view)
    raw = np.asarray(view, dtype=np.float64)
    assert not np.array_equal(ours, np.rint((raw - raw.min()) / (raw.max() - raw.min()) * 255).astype(np.uint8))
    assert ours.dtype == np.uint8 and ours.max() == 255 and ours.min() == 0
    # A flat grey is no longer flat once normalised per channel; a flat stretch is zeros, not NaN.
    assert len(np.unique(paper_stretch(Image.new("RGB", (8, 8), (9, 9, 9))))) == 3


@pytest.mark.parametrize("size", [512, 768, 1024])
def test_auto_maps_have_about_the_papers_edges_and_none_where_it_has_none(size):
    names = ("astronaut", "coffee", "immunohistochemistry", "hubble_deep_field", "grass", "noise", "horse")
    names += ("line_art", "written", "moon", "text", "stars", "dark", "fog", "checkerboard")
    ratios, stray = {}, {}
    for name in names:
        paper, auto = edge_count(crop_map(name, size, maps="paper")), edge_count(crop_map(name, size))
        if paper < 0.001 * size * size:  # empty or nearly: auto stays under 0.1%, and at 0 with it
            stray[name] = auto if paper == 0 or auto >= 0.001 * size * size else 0
        else:
            ratios[name] = round(auto / paper, 2)
    assert all(0.5 <= r <= 2 for r in ratios.values()), ratios
    assert not any(stray.values()), stray
    assert len(ratios) >= 8 and len(stray) >= 5


def test_auto_edges_sit_on_the_full_resolution_picture():
    """auto keeps the thin structures where they are: its edges lie near full-resolution Canny's."""
    import cv2

    from doge.plugins.controls.canny import paper_stretch
    from doge.rendering.geometry import fit_geometry

    image = picture("line_art")
    g = fit_geometry(*image.size, 1024, "crop")
    auto = crop_map("line_art", 1024)[..., 0] > 127
    blurred = cv2.GaussianBlur(paper_stretch(g.apply(image, Image.Resampling.BICUBIC)), (0, 0), 0.6 * 1024 / 224)
    full = cv2.Canny(blurred, 5, 40) > 0
    near_full = cv2.dilate(full.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert auto.any() and (auto & ~near_full).sum() < 0.01 * auto.sum()


def test_an_empty_or_nearly_empty_paper_map_is_reported_empty():
    for name in ("moon", "dark", "fog", "flat", "stars"):
        for maps in ("auto", "paper"):
            made = Image.fromarray(crop_map(name, 768, maps=maps))
            assert CannyControl().is_empty(made), (name, maps)


def test_computed_maps_leave_letterbox_bars_black(tiny_depth):
    from doge.rendering.geometry import fit_geometry

    image = square_image(size=256, lo=64, hi=192).resize((384, 192))
    g = fit_geometry(384, 192, 96, "pad")
    assert g.pad == (0, 24, 0, 24)
    for control in (CannyControl(), DepthControl(model=str(tiny_depth))):
        made = pixels(control.make(image, g.output_size, Path("a.jpg"), geometry=g))
        assert made.shape[:2] == (96, 96)
        assert not made[:24].any() and not made[72:].any(), control.name
        assert made[24:72].any(), control.name
