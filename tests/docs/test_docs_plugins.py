"""The plugin author guide's example plugins (docs/examples/), installed the way pip installs a
plugin (a module plus dist-info entry points) and run through doge, one per hook."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from doge import pluginmanager

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
ENTRY_POINTS = {
    "colour-stats": "doge_colour_stats",
    "sparse-gap": "doge_sparse_gap",
    "threshold": "doge_threshold_control",
    "aliases": "doge_aliases_command",
    "webhook": "doge_webhook",
}


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """Every example plugin installed as the distribution doge-docs-examples 1.0; a plugin manager
    and a doge CLI group built anew for the test, and dropped after it."""
    from doge.cli import main

    site = tmp_path / "site-packages"
    info = site / "doge_docs_examples-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: doge-docs-examples\nVersion: 1.0\n")
    lines = "".join(f"{name} = {module}\n" for name, module in ENTRY_POINTS.items())
    (info / "entry_points.txt").write_text("[doge]\n" + lines)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setenv("DOGE_LOAD_PLUGINS", ",".join(ENTRY_POINTS))
    monkeypatch.setattr(pluginmanager, "_manager", None)
    monkeypatch.setattr(pluginmanager, "_tables", {})
    monkeypatch.setattr(pluginmanager, "_origins", {})
    monkeypatch.setattr(main.cli, "commands", dict(main.cli.commands))
    yield tmp_path
    pluginmanager._manager = None
    pluginmanager._tables.clear()


def doge(*args) -> str:
    from doge.cli.main import get_cli

    result = CliRunner().invoke(get_cli(), [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def solid_folder(folder: Path, colours) -> Path:
    folder.mkdir(parents=True)
    for i, colour in enumerate(colours):
        Image.new("RGB", (16, 16), colour).save(folder / f"{i}.png")
    return folder


def test_every_example_plugin_is_listed_with_its_distribution(installed):
    listing = json.loads(doge("plugins", "--json"))
    rows = {(kind, e["name"]): e for kind, entries in listing.items() for e in entries}
    assert rows["encoders", "colour-stats"]["origin"] == "doge-docs-examples 1.0"
    assert rows["text_encoders", "colour-stats"]["plugin"] == "colour-stats"
    assert rows["estimators", "sparse-mean"]["plugin"] == "sparse-gap"
    assert rows["controls", "threshold"]["plugin"] == "threshold"
    assert rows["commands", "aliases"]["plugin"] == "aliases"


def test_the_encoder_and_its_text_tower_make_colour_gaps(installed):
    home = installed / "home"
    src = solid_folder(installed / "red", [(255, 0, 0), (255, 0, 0)])
    tgt = solid_folder(installed / "dark", [(0, 0, 51), (0, 0, 102)])
    common = ["--home", home, "--quiet", "gap", "create"]
    doge(*common, "red->dark", "--src", src, "--tgt", tgt, "--encoder", "colour-stats", "--workers", "0")
    from doge.api import load_gap

    gap = load_gap("red->dark", home=home)
    # means: red (1, 0, 0) → dark blue (0, 0, 0.3); spread of the blue channel across solid images: 0
    assert torch.allclose(gap.vector, torch.tensor([-1.0, 0.0, 0.3, 0.0, 0.0, 0.0]), atol=1e-6)
    assert gap.provenance["encoder"]["plugin"] == "colour-stats"

    doge(*common, "red->words", "--src", src, "--tgt-text", "{} dark", "--classes", "blue", "--encoder", "colour-stats")
    words = load_gap("red->words", home=home)
    assert torch.allclose(words.vector, torch.tensor([-0.95, 0.05, 0.55, 0.0, 0.0, 0.0]), atol=1e-6)
    assert words.provenance["text_encoder"]["model"] == "colour-words"


def test_the_estimator_keeps_the_strongest_coordinates_at_the_mean_gaps_length(installed):
    home = installed / "home"
    src = solid_folder(installed / "a", [(200, 100, 10), (180, 120, 30)])
    tgt = solid_folder(installed / "b", [(40, 110, 250), (60, 90, 230)])
    base = ["--home", home, "--quiet", "gap", "create", "--src", src, "--tgt", tgt, "--encoder", "colour-stats"]
    out = doge(
        *base[:5], "sparse", *base[5:], "--estimator", "sparse-mean", "--estimator-option", "keep=0.25", "--json"
    )
    assert json.loads(out)["provenance"]["estimator"] == {
        "name": "sparse-mean",
        "params": {"keep": 0.25, "coordinates": 2},
    }
    doge(*base[:5], "dense", *base[5:])
    from doge.api import load_gap

    sparse, dense = load_gap("sparse", home=home).vector, load_gap("dense", home=home).vector
    strongest = dense.abs().topk(2).indices
    assert sparse.count_nonzero() == 2 and set(sparse.nonzero().flatten().tolist()) == set(strongest.tolist())
    assert sparse.norm() == pytest.approx(dense.norm().item(), rel=1e-5)
    from doge.cli.main import get_cli

    bad = CliRunner().invoke(
        get_cli(),
        [str(a) for a in [*base[:5], "x", *base[5:], "--estimator", "sparse-mean", "--estimator-option", "keep=2"]],
    )
    assert bad.exit_code != 0 and "keep=2.0: give a share" in bad.output


@pytest.mark.slow
def test_the_control_renders_with_its_own_controlnet(installed, gap_home, tiny_model, net, domains):
    def render(out: Path, level: int):
        args = ["--home", gap_home, "--quiet", "render", "--gap", "real->painting", "--src", domains["real"]]
        args += ["--out", out, "--model", tiny_model, "--size", "64", "--steps", "2", "--limit", "1"]
        doge(
            *args,
            "--control",
            "threshold",
            "--controlnet",
            f"threshold={net}",
            "--control-option",
            f"threshold.level={level}",
        )
        (line,) = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
        return line

    made = {}
    for level in (80, 180):
        out = installed / f"level-{level}"
        line = render(out, level)
        (control,) = line["controls"]
        assert control["name"] == "threshold" and control["options"] == {"level": level}
        assert control["controlnet"] == str(net) and "empty" not in control
        source = Image.open(line["source"]).convert("RGB").resize((64, 64), Image.Resampling.BICUBIC).convert("L")
        (control_map,) = (out / "controls").iterdir()
        assert (np.asarray(Image.open(control_map))[..., 0] == np.where(np.asarray(source) >= level, 255, 0)).all()
        made[level] = np.asarray(Image.open(out / line["image"]), dtype=int)
    assert np.abs(made[80] - made[180]).max() > 0  # the map reached the ControlNet
    (control,) = render(installed / "level-256", 256)["controls"]  # all black: no layout to hold
    assert control["empty"] is True


def test_the_command_lists_aliases(installed, gap_home):
    doge("--home", gap_home, "gap", "tag", "real->painting@v1", "prod")
    assert doge("--home", gap_home, "aliases") == "real->painting@prod -> real->painting@v1\n"
    assert json.loads(doge("aliases", "--json", "--home", gap_home)) == {"real->painting@prod": "real->painting@v1"}


def test_the_gap_event_listener_posts_each_change_to_the_webhook(installed, monkeypatch, tiny_model, domains):
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("DOGE_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/hook")
        home = installed / "home"
        common = ["--home", home, "--quiet", "gap"]
        doge(
            *common,
            "create",
            "real->painting",
            "--src",
            domains["real"],
            "--tgt",
            domains["painting"],
            "--model",
            tiny_model,
            "--workers",
            "0",
        )
        doge(*common, "tag", "real->painting@v1", "prod")
    finally:
        server.shutdown()
        server.server_close()
    assert [(r["event"]["action"], r["event"]["name"], r["event"]["version"]) for r in received] == [
        ("version-created", "real->painting", 1),
        ("alias-set", "real->painting", 1),
    ]
    assert received[1]["text"].endswith(": alias-set real->painting@v1")
    assert received[0]["registry"].startswith("sqlite:///")
