"""The paper's controls: HED soft edges, dataset label maps drawn in ADE20K colours, depth polarity."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from doge.errors import DogeError
from doge.plugins.controls import DepthControl, HedControl, SegControl
from doge.plugins.controls.hed import _network, load_hed_state

# ADE20K colours (the SD 2.1 seg ControlNet's palette) of the classes the masks below use.
ROAD, SIDEWALK, SKY, CAR, PERSON, TREE = (
    (140, 140, 140),
    (235, 255, 7),
    (6, 230, 230),
    (0, 102, 200),
    (150, 5, 61),
    (4, 200, 3),
)
BLACK = (0, 0, 0)


def colour_at(img: Image.Image, x: int, y: int) -> tuple:
    return tuple(int(v) for v in np.asarray(img)[y, x])


def quadrants(ids: list[int], size: int = 8) -> np.ndarray:
    """A 2x2-block mask: top-left, top-right, bottom-left, bottom-right hold ``ids``."""
    a, b, c, d = ids
    top = np.hstack([np.full((size, size), a), np.full((size, size), b)])
    bottom = np.hstack([np.full((size, size), c), np.full((size, size), d)])
    return np.vstack([top, bottom])


# --- seg: label IDs in, ADE20K colours out ---------------------------------------------------


def test_a_cityscapes_label_mask_becomes_the_ade20k_colours_of_its_classes(tmp_path):
    # Cityscapes gtFine *_labelIds.png: 8-bit grey, 7 road, 26 car, 23 sky, 24 person.
    Image.fromarray(quadrants([7, 26, 23, 24]).astype(np.uint8)).save(tmp_path / "frankfurt_0001.png")
    control = SegControl(control_dir=tmp_path, labels="cityscapes")
    out = control.make(Image.new("RGB", (16, 16)), (64, 48), Path("src/frankfurt_0001.jpg"))
    assert out.size == (64, 48) and out.mode == "RGB"
    assert colour_at(out, 5, 5) == ROAD and colour_at(out, 60, 5) == CAR
    assert colour_at(out, 5, 40) == SKY and colour_at(out, 60, 40) == PERSON
    # Nearest neighbour: no colour that is no class appears at the quadrants' borders.
    assert {tuple(c) for c in np.asarray(out).reshape(-1, 3)} == {ROAD, CAR, SKY, PERSON}


def test_void_ids_are_black_and_unknown_ids_are_reported_once(tmp_path, caplog):
    Image.fromarray(quadrants([0, 200, 8, 200]).astype(np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(quadrants([200, 8, 8, 8]).astype(np.uint8)).save(tmp_path / "b.png")
    control = SegControl(control_dir=tmp_path, labels="cityscapes")
    with caplog.at_level(logging.WARNING, logger="doge"):
        out = control.make(Image.new("RGB", (4, 4)), (16, 16), Path("a.jpg"))
        control.make(Image.new("RGB", (4, 4)), (16, 16), Path("b.jpg"))
    assert colour_at(out, 1, 1) == BLACK and colour_at(out, 12, 1) == BLACK and colour_at(out, 1, 12) == SIDEWALK
    reports = [r.getMessage() for r in caplog.records if "200" in r.getMessage()]
    assert len(reports) == 1 and "cityscapes" in reports[0]
    assert not any(" 0 " in r.getMessage() or "IDs 0," in r.getMessage() for r in caplog.records)


def test_gta5_palette_masks_are_read_by_index_not_by_colour(tmp_path):
    mask = Image.fromarray(quadrants([7, 26, 21, 23]).astype(np.uint8), mode="L").convert("P")
    mask.putdata(quadrants([7, 26, 21, 23]).astype(np.uint8).ravel().tolist())
    mask.putpalette([(i * 37) % 256 for i in range(768)])  # colours that mean nothing
    mask.save(tmp_path / "00001.png")
    out = SegControl(control_dir=tmp_path, labels="gta5").make(Image.new("RGB", (4, 4)), (16, 16), Path("00001.png"))
    assert [colour_at(out, x, y) for x, y in ((1, 1), (12, 1), (1, 12), (12, 12))] == [ROAD, CAR, TREE, SKY]


def test_synthia_sixteen_bit_masks_take_the_id_from_the_red_channel(tmp_path):
    ids = quadrants([3, 8, 1, 10]).astype(np.uint16)  # SYNTHIA: road, car, sky, pedestrian
    bgr = np.stack([np.full_like(ids, 999), np.full_like(ids, 7), ids], axis=2)  # instance ids elsewhere
    cv2.imwrite(str(tmp_path / "0000001.png"), bgr)
    out = SegControl(control_dir=tmp_path, labels="synthia").make(
        Image.new("RGB", (4, 4)), (16, 16), Path("0000001.png")
    )
    assert [colour_at(out, x, y) for x, y in ((1, 1), (12, 1), (1, 12), (12, 12))] == [ROAD, CAR, SKY, PERSON]


def test_ade20k_ids_and_a_users_own_mapping(tmp_path):
    maps = tmp_path / "maps"
    maps.mkdir()
    Image.fromarray(quadrants([7, 21, 3, 0]).astype(np.uint8)).save(maps / "a.png")
    out = SegControl(control_dir=maps, labels="ade20k").make(Image.new("RGB", (4, 4)), (16, 16), Path("a.png"))
    # ADE20K annotations count from 1: 7 is road, 21 car, 3 sky; 0 ('other') is black.
    assert [colour_at(out, x, y) for x, y in ((1, 1), (12, 1), (1, 12), (12, 12))] == [ROAD, CAR, SKY, BLACK]

    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"7": "road", "21": [1, 2, 3], "3": None}))
    out = SegControl(control_dir=maps, labels=str(mine)).make(Image.new("RGB", (4, 4)), (16, 16), Path("a.png"))
    assert [colour_at(out, x, y) for x, y in ((1, 1), (12, 1), (1, 12))] == [ROAD, (1, 2, 3), BLACK]

    mine.write_text(json.dumps({"7": "raod"}))
    with pytest.raises(DogeError, match="no ADE20K class.*road"):
        SegControl(control_dir=maps, labels=str(mine))
    with pytest.raises(DogeError, match="cityscapes, gta5, synthia, ade20k"):
        SegControl(control_dir=maps, labels="kitti")


def test_the_shipped_tables_name_their_sources_and_only_ade20k_classes():
    from importlib import resources

    from doge.plugins.controls.seg import LABEL_SETS, ade20k_classes, label_colours

    assert len(ade20k_classes()) == 150
    folder = resources.files("doge.plugins.controls").joinpath("seg_labels")
    for name in LABEL_SETS:
        data = json.loads(folder.joinpath(f"{name}.json").read_text())
        assert data["sources"] and data["description"]
        assert label_colours(name)  # every class name resolves, or this raises
    assert label_colours("cityscapes")[26] == CAR and label_colours("synthia")[8] == CAR


# --- depth polarity --------------------------------------------------------------------------


def test_depth_invert_turns_distance_maps_into_near_bright(tmp_path):
    distance = np.tile(np.linspace(0, 255, 16).astype(np.uint8), (16, 1))  # left near (0 m), right far
    Image.fromarray(distance).save(tmp_path / "a.png")
    plain = np.asarray(DepthControl(control_dir=tmp_path).make(Image.new("RGB", (4, 4)), (16, 16), Path("a.png")))
    flipped = np.asarray(
        DepthControl(control_dir=tmp_path, invert=True).make(Image.new("RGB", (4, 4)), (16, 16), Path("a.png"))
    )
    assert plain[0, 0, 0] == 0 and flipped[0, 0, 0] == 255  # the near side is now bright
    assert np.array_equal(flipped.astype(int), 255 - plain.astype(int))
    with pytest.raises(DogeError, match="already near = bright"):
        DepthControl(invert=True)  # estimated (MiDaS) maps are inverse depth already


# --- HED -------------------------------------------------------------------------------------


def test_hed_has_the_real_checkpoint_layout_and_loads_it_without_unpickling(tmp_path, tiny_model):
    weights = tiny_model / "hed" / "ControlNetHED.safetensors"
    state = load_hed_state(weights)
    # ControlNetHED.pth of lllyasviel/Annotators: a 'norm' parameter and five VGG blocks.
    assert set(state) == set(_network().state_dict())
    assert state["block1.convs.0.weight"].shape == (64, 3, 3, 3) and state["block5.projection.weight"].shape == (
        1,
        512,
        1,
        1,
    )
    pth = tmp_path / "ControlNetHED.pth"
    torch.save(state, pth)  # how the real file is stored: a plain state dict
    assert torch.equal(load_hed_state(pth)["norm"], state["norm"])

    evil = tmp_path / "evil.pth"
    torch.save({"norm": state["norm"], "x": Path("/")}, evil)  # an arbitrary object: needs unpickling
    with pytest.raises(DogeError, match="plain tensors"):
        load_hed_state(evil)


def test_hed_edges_are_a_soft_map_at_the_output_size(tiny_model):
    control = HedControl(weights=str(tiny_model / "hed" / "ControlNetHED.safetensors"))
    img = np.zeros((64, 64, 3), dtype=np.uint8)
    img[16:48, 16:48] = 255
    out = control.make(Image.fromarray(img), (96, 64), Path("a.png"))
    a = np.asarray(out)
    assert out.size == (96, 64) and (a[..., 0] == a[..., 2]).all()
    assert a.std() > 0  # random weights still respond to the square
    assert control.resolve_controlnet() == "thibaud/controlnet-sd21-hed-diffusers"
    assert control.describe()["weights"].endswith("ControlNetHED.safetensors")


@pytest.mark.slow  # two HED passes at 1024 px on the CPU (~30 s)
def test_hed_paper_maps_are_the_papers_construction(tiny_model, name="written"):
    """--hed-maps paper at --fit crop: HED on the 224-px stretched CLIP view at detect resolution 1024,
    back to 512, Lanczos to the output (reference: tests/rendering/paper_reference.py)."""
    from paper_reference import paper_hed

    from doge.rendering.geometry import fit_geometry
    from doge.sample_data import edge_pictures

    image = Image.fromarray(dict(edge_pictures())[name])
    control = HedControl(weights=str(tiny_model / "hed" / "ControlNetHED.safetensors"), maps="paper")
    g = fit_geometry(*image.size, 320, "crop")
    made = np.asarray(control.make(image, g.output_size, Path(f"{name}.png"), geometry=g))
    expected = paper_hed(image, 320, control._load())
    assert made.shape == expected.shape == (320, 320, 3)
    assert np.abs(made.astype(int) - expected.astype(int)).max() <= 1  # float32 convolutions: at most 1 level
    assert (made != expected).mean() < 0.001
    # The default runs HED at the output's resolution: another, sharper map.
    auto = np.asarray(HedControl(weights=control.options["weights"]).make(image, g.output_size, Path("a"), geometry=g))
    assert auto.shape == made.shape and not np.array_equal(auto, made)
    with pytest.raises(DogeError, match="--hed-maps 'full'"):
        HedControl(maps="full")


def test_hed_without_weights_offline_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(DogeError, match="--hed-weights"):
        HedControl().make(Image.new("RGB", (8, 8)), (8, 8), Path("a.png"))


def test_render_with_hed_and_with_cityscapes_labels(tiny_model, domains, tmp_path):
    from doge.api import create_gap
    from doge.cli.main import get_cli

    home = tmp_path / "home"
    create_gap(
        "real->painting",
        domains["real"],
        domains["painting"],
        model=str(tiny_model),
        home=home,
        progress=False,
        workers=0,
    )
    base = ["--home", str(home), "--quiet", "render", "--gap", "real->painting", "--src", str(domains["real"])]
    base += [
        "--model",
        str(tiny_model),
        "--size",
        "64",
        "--steps",
        "2",
        "--limit",
        "1",
        "--controlnet",
        str(tiny_model / "controlnet"),
    ]
    out = tmp_path / "hed"
    argv = [
        *base,
        "--out",
        str(out),
        "--control",
        "hed",
        "--hed-weights",
        str(tiny_model / "hed" / "ControlNetHED.safetensors"),
    ]
    result = CliRunner().invoke(get_cli(), argv)
    assert result.exit_code == 0, result.output
    assert len(list((out / "images").iterdir())) == 1
    assert [p.name.rsplit("_", 1)[1] for p in (out / "controls").iterdir()] == ["hed.png"]

    maps = tmp_path / "maps"
    maps.mkdir()
    for source in sorted(domains["real"].iterdir()):
        Image.fromarray(quadrants([7, 26, 23, 24]).astype(np.uint8)).save(maps / f"{source.stem}.png")
    out = tmp_path / "seg"
    argv = [*base, "--out", str(out), "--control", "seg", "--control-dir", str(maps), "--seg-labels", "cityscapes"]
    result = CliRunner().invoke(get_cli(), argv)
    assert result.exit_code == 0, result.output
    control = Image.open(next((out / "controls").iterdir()))
    assert colour_at(control, 2, 2) == ROAD and colour_at(control, 61, 61) == PERSON
