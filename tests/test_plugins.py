"""Every hookspec exercised by a plugin implementing it, plus discovery through entry points."""

import json
import os
import subprocess
import sys
import textwrap

import click
import pytest
import torch
from click.testing import CliRunner

from doge import pluginmanager
from doge.errors import DogeError
from doge.hooks import hookimpl


@pytest.fixture
def fresh_plugins(monkeypatch):
    """A plugin manager built anew for the test, and dropped after it."""
    monkeypatch.setattr(pluginmanager, "_manager", None)
    monkeypatch.setattr(pluginmanager, "_tables", {})
    monkeypatch.setattr(pluginmanager, "_origins", {})
    yield
    pluginmanager._manager = None
    pluginmanager._tables.clear()


def to_tensor(image):
    return torch.tensor(list(image.resize((4, 4)).getdata()), dtype=torch.float32).T.reshape(3, 4, 4) / 255


class MeanColourEncoder:
    """Embeds an image as its mean colour: easy to compute by hand."""

    plugin = "mean-colour"
    dim = 3
    device = "cpu"
    dtype = torch.float32

    def __init__(self, model=None, device=None, dtype=None):
        self.model_id = model or "none"

    def describe(self):
        return {"plugin": self.plugin, "model": self.model_id, "revision": None, "dim": 3, "dtype": "float32"}

    @property
    def preprocessor(self):
        return to_tensor

    def encode(self, pixels):
        return pixels.mean(dim=(2, 3))


class EncoderPlugin:
    @hookimpl
    def register_encoders(self, register):
        register("mean-colour", MeanColourEncoder)


class EstimatorPlugin:
    @hookimpl
    def register_estimators(self, register):
        register("first-target", lambda src, tgt: (tgt.vectors[0] - src.vectors.mean(0), {"row": 0}))


class ControlPlugin:
    class Invert:
        name = "invert"

    @hookimpl
    def register_controls(self, register):
        register("invert", self.Invert)


class CommandPlugin:
    @hookimpl
    def register_commands(self, cli):
        @cli.command()
        def hello():
            """Say hello."""
            click.echo("hello from a plugin")


def solid(path, colour):
    from PIL import Image

    Image.new("RGB", (8, 8), colour).save(path)


def test_encoder_and_estimator_plugins_drive_gap_creation(fresh_plugins, tmp_path):
    pluginmanager.register_plugin(EncoderPlugin(), name="enc")
    pluginmanager.register_plugin(EstimatorPlugin(), name="est")
    (tmp_path / "src").mkdir(), (tmp_path / "tgt").mkdir()
    solid(tmp_path / "src/a.png", (255, 0, 0))
    solid(tmp_path / "src/b.png", (0, 0, 255))
    solid(tmp_path / "tgt/c.png", (0, 255, 0))
    from doge.api import create_gap

    gap = create_gap(
        "red->green",
        tmp_path / "src",
        tmp_path / "tgt",
        encoder="mean-colour",
        estimator="first-target",
        home=tmp_path / "home",
        progress=False,
        workers=0,
    )
    assert torch.allclose(gap.vector, torch.tensor([-0.5, 1.0, -0.5]))
    assert gap.provenance["encoder"]["plugin"] == "mean-colour"
    assert gap.provenance["estimator"] == {"name": "first-target", "params": {"row": 0}}


def test_control_plugin_is_registered(fresh_plugins):
    pluginmanager.register_plugin(ControlPlugin(), name="ctl")
    assert pluginmanager.get("controls", "invert") is ControlPlugin.Invert
    assert pluginmanager.table("controls")["invert"].plugin == "ctl"


def test_command_plugin_adds_a_cli_command(fresh_plugins):
    pluginmanager.register_plugin(CommandPlugin(), name="cmd")
    group = click.Group()
    pluginmanager.register_commands(group)
    result = CliRunner().invoke(group, ["hello"])
    assert result.output == "hello from a plugin\n"


def test_two_plugins_with_one_name_is_an_error_naming_both(fresh_plugins):
    class Duplicate:
        @hookimpl
        def register_estimators(self, register):
            register("mean", lambda src, tgt: None)

    pluginmanager.register_plugin(Duplicate(), name="dupe")
    with pytest.raises(DogeError) as info:
        pluginmanager.table("estimators")
    assert "doge.plugins.estimators" in str(info.value) and "dupe" in str(info.value)


def test_unknown_plugin_name_lists_known_ones(fresh_plugins):
    with pytest.raises(DogeError, match="known: class-mean, coral, lda, mean, median, pca, trimmed-mean"):
        pluginmanager.get("estimators", "meen")


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch, fresh_plugins):
    """A third-party plugin installed the way pip installs one: a module plus dist-info entry points."""
    (tmp_path / "doge_sepia.py").write_text(
        textwrap.dedent("""
        from doge.hooks import hookimpl

        def sepia_gap(src, tgt):
            return tgt.vectors.mean(0) - src.vectors.mean(0), {"sepia": True}

        @hookimpl
        def register_estimators(register):
            register("sepia", sepia_gap)
    """)
    )
    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('this plugin is broken')\n")
    info = tmp_path / "doge_sepia-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: doge-sepia\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text("[doge]\nsepia = doge_sepia\nbroken = broken_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_entry_point_plugins_load_and_say_where_they_come_from(installed_plugin, monkeypatch):
    monkeypatch.setenv("DOGE_LOAD_PLUGINS", "sepia")
    assert pluginmanager.get("estimators", "sepia").__name__ == "sepia_gap"
    rows = {e["name"]: e for e in pluginmanager.describe()["estimators"]}
    assert rows["sepia"]["origin"] == "doge-sepia 1.2"
    assert rows["mean"]["origin"] == "built-in"


def test_a_broken_plugin_names_itself_and_the_way_out(installed_plugin, monkeypatch):
    monkeypatch.delenv("DOGE_LOAD_PLUGINS", raising=False)
    with pytest.raises(DogeError, match="plugin 'broken'.*DOGE_LOAD_PLUGINS"):
        pluginmanager.get_manager()


def test_empty_doge_load_plugins_loads_no_third_party_plugin(installed_plugin, monkeypatch):
    monkeypatch.setenv("DOGE_LOAD_PLUGINS", "")
    assert "sepia" not in pluginmanager.table("estimators")
    assert "mean" in pluginmanager.table("estimators")


def test_doge_plugins_json_lists_everything_with_its_plugin(installed_plugin):
    env = {**os.environ, "PYTHONPATH": str(installed_plugin), "DOGE_LOAD_PLUGINS": "sepia"}
    out = subprocess.run(
        [sys.executable, "-m", "doge.cli.main", "plugins", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    listing = json.loads(out)
    estimators = {e["name"]: e["plugin"] for e in listing["estimators"]}
    assert estimators["sepia"] == "sepia" and estimators["mean"] == "doge.plugins.estimators"
    assert {e["name"] for e in listing["encoders"]} >= {"clip"}
    commands = {c["name"]: c["plugin"] for c in listing["commands"]}
    assert commands["gap"] == commands["plugins"] == "doge.cli.commands"
