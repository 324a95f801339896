"""Render fidelity on the tiny model: sources of any shape, maps laid out like the outputs."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from doge.cli.main import get_cli
from doge.rendering.geometry import Geometry

# (width, height) of the sources: 4:3, 1:2, a driving frame; each with a white box painted on it.
SHAPES = {"photo": (320, 240), "tall": (150, 300), "frame": (1914, 1052)}


def box_of(width: int, height: int) -> tuple[int, int, int, int]:
    """A COCO box (x, y, w, h) off-centre, wholly inside the centre square."""
    side = min(width, height)
    return ((width - side) // 2 + side // 5, (height - side) // 2 + side // 4, side // 3, side // 4)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes")
    for name, (w, h) in SHAPES.items():
        a = np.full((h, w, 3), 30, dtype=np.uint8)
        x, y, bw, bh = box_of(w, h)
        a[y : y + bh, x : x + bw] = 230
        Image.fromarray(a).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def home(gap_home):
    """This module's registry (conftest's gap_home) in place of conftest's empty home."""
    return gap_home


@pytest.fixture(scope="module")
def net(tiny_model, tmp_path_factory):
    from doge.testing import build_active_controlnet

    return build_active_controlnet(tiny_model, tmp_path_factory.mktemp("nets") / "active", seed=1)


def render(home, model, src, out, *args, ok=True):
    argv = ["--home", str(home), "--quiet", "render", "--gap", "real->painting", "--src", str(src)]
    argv += ["--out", str(out), "--model", str(model), "--steps", "2", *map(str, args)]
    result = CliRunner().invoke(get_cli(), argv)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def entries(out: Path) -> dict[str, dict]:
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return {Path(e["source"]).stem: e for e in lines}


@pytest.mark.parametrize("fit", ["keep", "crop", "pad"])
def test_fit_shapes_and_a_painted_box_lands_where_the_geometry_says(home, tiny_model, net, sources, tmp_path, fit):
    out = tmp_path / fit
    render(home, tiny_model, sources, out, "--size", "256", "--fit", fit, "--controlnet", net, "--batch-size", "3")
    found = entries(out)
    assert sorted(found) == sorted(SHAPES)
    for name, (w, h) in SHAPES.items():
        entry = found[name]
        assert entry["fit"] == fit
        g = Geometry.from_json(entry["geometry"])
        assert g.source_size == (w, h)
        output = Image.open(out / entry["image"])
        control = Image.open(out / "controls" / f"{name}_canny.png")
        assert output.size == control.size == g.output_size
        out_w, out_h = g.output_size
        if fit == "keep":
            assert out_w % 64 == 0 and out_h % 64 == 0
            # The aspect of the part of the source shown, within 1% (sides were once rounded to 64
            # each on its own: a 9% stretch); the remainder is cropped or letterboxed.
            left, top, right, bottom = g.box()
            pic_w, pic_h = g.picture_size()
            assert abs(pic_w / pic_h / ((right - left) / (bottom - top)) - 1) <= 0.01, name
            assert abs(g.scale[0] / g.scale[1] - 1) <= 0.01, name
        else:
            assert (out_w, out_h) == (256, 256)
        # The box's edges in the control map lie on the box the geometry maps it to.
        x, y, bw, bh = g.map_box(box_of(w, h))
        ys, xs = np.nonzero(np.asarray(control.convert("L")) > 127)
        assert len(xs) > 0, f"{name}: empty edge map"
        assert abs(xs.min() - x) <= 3 and abs(xs.max() - (x + bw)) <= 3, name
        assert abs(ys.min() - y) <= 3 and abs(ys.max() - (y + bh)) <= 3, name


@pytest.mark.parametrize("fit", ["pad", "keep"])
def test_control_dir_maps_get_the_same_layout(home, tiny_model, net, sources, tmp_path, fit):
    maps = tmp_path / "maps"
    maps.mkdir()
    for name, (w, h) in SHAPES.items():
        a = np.zeros((h, w, 3), dtype=np.uint8)
        x, y, bw, bh = box_of(w, h)
        a[y : y + bh, x : x + bw] = 255
        Image.fromarray(a).save(maps / f"{name}.png")
    out = tmp_path / "out"
    render(home, tiny_model, sources, out, "--size", "128", "--fit", fit, "--controlnet", net, "--control-dir", maps)
    geometries = {name: Geometry.from_json(entry["geometry"]) for name, entry in entries(out).items()}
    if fit == "keep":  # 320x240 and 1914x1052 have a remainder cropped away, 150x300 none
        assert geometries["photo"].crop is not None and geometries["frame"].crop is not None
        assert geometries["tall"].crop is None and geometries["tall"].pad is None
    for name, entry in entries(out).items():
        g = Geometry.from_json(entry["geometry"])
        control = np.asarray(Image.open(out / "controls" / f"{name}_canny.png").convert("L")) > 127
        x, y, bw, bh = g.map_box(box_of(*SHAPES[name]))
        ys, xs = np.nonzero(control)
        assert abs(xs.min() - x) <= 1 and abs(xs.max() + 1 - (x + bw)) <= 1, name
        assert abs(ys.min() - y) <= 1 and abs(ys.max() + 1 - (y + bh)) <= 1, name
        if g.pad is not None:
            assert control[: g.pad[1]].sum() == 0  # the letterbox stays black


def test_render_embeds_a_source_exactly_as_gap_create_does(home, tiny_model, net, sources, tmp_path):
    """One CLIP preprocessing: render's un-shifted embedding of a file is gap create's embedding of it."""
    import torch

    from doge.api import build_encoder
    from doge.data.clip_pixels import pil_processor_class
    from doge.data.encoding import encode_images
    from doge.data.images import discover
    from doge.rendering.batch import load_engine, load_source
    from doge.rendering.loading import embed_images
    from doge.rendering.plan import plan

    class OtherResizer(pil_processor_class()):
        """Same settings, another resizer: what transformers 5's torchvision backend amounts to."""

        def __call__(self, images, **kwargs):
            images = [im.resize((im.width // 3, im.height // 3), Image.Resampling.NEAREST) for im in images]
            return super().__call__(images=images, **kwargs)

    p = plan(["real->painting"], sources, tmp_path / "out", model=str(tiny_model), controlnets=[str(net)], home=home)
    engine = load_engine(p, "cpu")
    engine.pipe.feature_extractor = OtherResizer.from_dict(engine.pipe.feature_extractor.to_dict())
    rendered = {}
    for i, path in enumerate(p.sources.files):
        source = load_source(p, i)
        rendered[path.name] = embed_images(engine.pipe, [source.image])[0].float().cpu()
    encoder = build_encoder("clip", model=str(tiny_model), device="cpu", dtype="fp32")
    # Batches of one, as render embeds here: CPU kernels may round a batch of three differently.
    created = encode_images(encoder, discover(sources), batch_size=1, workers=0, progress=False)
    assert sorted(created.files) == sorted(rendered)  # every shape: 4:3, 1:2, 1914x1052
    for name, vector in zip(created.files, created.vectors):
        assert torch.equal(rendered[name], vector), name


def test_an_empty_map_is_warned_about_once_and_marked(home, tiny_model, net, sources, tmp_path, caplog):
    import logging

    flat = tmp_path / "src"
    flat.mkdir()
    Image.new("RGB", (96, 64), (120, 130, 140)).save(flat / "fog.png")  # no edges at all
    (flat / "photo.png").write_bytes((sources / "photo.png").read_bytes())
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="doge"):
        render(home, tiny_model, flat, out, "--size", "64", "--controlnet", net, "-n", "2")
    warnings = [r.getMessage() for r in caplog.records if "empty" in r.getMessage()]
    assert len(warnings) == 1 and "fog.png" in warnings[0] and "--canny-low" in warnings[0]
    found = {Path(e["source"]).stem: e for e in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())}
    assert found["fog"]["controls"][0]["empty"] is True
    assert "empty" not in found["photo"]["controls"][0]


def test_recipe_paper_and_explicit_flags_win(home, tiny_model, net, sources, tmp_path):
    from doge.rendering.recipes import PAPER_NEGATIVE_PROMPT

    out = tmp_path / "paper"
    render(home, tiny_model, sources, out, "--recipe", "paper", "--size", "64", "--controlnet", net, "--seed", "7")
    found = entries(out)
    for entry in found.values():
        assert entry["recipe"] == "paper" and entry["fit"] == "crop"
        assert entry["negative_prompt"] == PAPER_NEGATIVE_PROMPT
        assert (entry["edit_weight"], entry["guidance"]) == (1.5, 5.0)
        assert entry["controls"][0]["options"] == {"low": 100, "high": 800, "maps": "paper"}
        assert (entry["steps"], entry["size"], entry["run_seed"]) == (2, 64, 7)  # given explicitly: they win
        assert Image.open(out / entry["image"]).size == (64, 64)
    plain = tmp_path / "plain"
    render(home, tiny_model, sources, plain, "--size", "64", "--controlnet", net, "--limit", "1")
    (entry,) = entries(plain).values()
    assert entry["recipe"] is None and entry["fit"] == "keep" and entry["negative_prompt"] == ""
    assert entry["controls"][0]["options"]["maps"] == "auto"


def test_noise_level_is_checked_against_the_model_before_it_loads(home, tiny_model, sources, tmp_path):
    result = render(home, tiny_model, sources, tmp_path / "out", "--noise-level", "1000", "--control", "none", ok=False)
    assert result.exit_code != 0 and "--noise-level 1000" in result.output and "0 to 999" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "images").exists()


def test_progress_moves_per_denoising_step(home, tiny_model, net, sources, tmp_path):
    from doge.rendering.batch import OutputWriter, load_engine, load_source, render_batch
    from doge.rendering.plan import plan

    p = plan(
        ["real->painting"],
        sources,
        tmp_path / "out",
        model=str(tiny_model),
        controlnets=[str(net)],
        home=home,
        size=128,
        steps=3,
        per_source=2,
    )
    engine = load_engine(p, "cpu")
    loaded = {i: load_source(p, i) for i in range(len(p.sources.files))}
    shapes = {loaded[job.source].geometry.output_size for job in p.pending}
    steps: list[float] = []
    writer = OutputWriter(p.out, len(p.pending))
    outputs = render_batch(
        p, engine, p.pending, loaded, on_step=lambda share: (steps.append(share), writer.advance(share))
    )
    assert len(steps) == 3 * len(shapes)  # each pipeline call reports each of its 3 steps
    assert abs(sum(steps) - len(p.pending)) < 1e-9
    writer.write(outputs)
    assert abs(writer._bar.n - len(p.pending)) < 1e-9  # written images are not counted twice
    writer.close()


def test_grid_shows_the_source_laid_out_and_scaled_to_the_cell(home, tiny_model, net, sources, tmp_path):
    out = tmp_path / "out"
    render(home, tiny_model, sources, out, "--size", "64", "--fit", "crop", "--controlnet", net, "--grid")
    sheet = np.asarray(Image.open(out / "grid" / "grid_000.png").convert("RGB"))
    pad, cell = 4, 64
    row_height = cell + 2 * pad + 12
    for row in range(len(SHAPES)):
        top = row * row_height + pad
        source = sheet[top : top + cell, pad : pad + cell]
        # A 4:3, 1:2 or 1914x1052 source, centre-cropped like its outputs, fills its square cell.
        assert (source != 255).any(axis=2).all(), f"row {row}: the source does not fill its cell"
