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


class LetterCountText:
    """A text tower in mean-colour's 3-wide space: counts of the letters r, g and b."""

    @classmethod
    def for_image_encoder(cls, encoder_provenance, text_model=None, device=None):
        assert encoder_provenance["plugin"] == "mean-colour"
        return cls()

    def encode(self, texts):
        return torch.tensor([[float(text.count(c)) for c in "rgb"] for text in texts])

    def describe(self):
        return {"plugin": "mean-colour", "model": "letter-count", "dim": 3}


class TextEncoderPlugin:
    @hookimpl
    def register_text_encoders(self, register):
        register("mean-colour", LetterCountText)


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


# -- the whole contract: every hookspec implemented by a test plugin, and plugins' options ---------


def test_every_hookspec_has_a_test_plugin_implementing_it():
    """As datasette's: a new hookspec fails this until a test exercises a plugin implementing it."""
    import re
    from pathlib import Path

    from doge import hooks

    specs = {name for name in dir(hooks) if hasattr(getattr(hooks, name), "doge_spec")}
    assert {"register_encoders", "register_estimators", "register_controls", "register_commands"} <= specs
    implemented = set()
    for path in Path(__file__).parents[1].rglob("test_*.py"):
        implemented |= set(re.findall(r"@hookimpl\s+def (\w+)\(", path.read_text()))
    assert not specs - implemented, f"hookspecs no test plugin implements: {sorted(specs - implemented)}"


def test_plugin_options_come_from_the_plugin(fresh_plugins):
    assert pluginmanager.options("estimators", "trimmed-mean")["trim"].default == 0.1
    assert pluginmanager.options("estimators", "mean") == {}
    assert {k: o.default for k, o in pluginmanager.options("controls", "canny").items()} == {
        "low": 100,
        "high": 800,
        "maps": "auto",
    }
    assert pluginmanager.parse_options("estimators", "lda", [("shrinkage", "0.3")]) == {"shrinkage": 0.3}
    assert pluginmanager.parse_options("estimators", "lda", [("shrinkage", "auto")]) == {"shrinkage": "auto"}
    assert pluginmanager.parse_options("controls", "canny", [("low", "50")]) == {"low": 50}
    with pytest.raises(DogeError, match=r"the trimmed-mean estimator has no option trimm; its options: trim=0.1"):
        pluginmanager.parse_options("estimators", "trimmed-mean", [("trimm", "0.2")])
    with pytest.raises(DogeError, match=r"option canny.low='lots': give a whole number, like its default 100"):
        pluginmanager.parse_options("controls", "canny", [("low", "lots")])


def test_estimator_options_reach_the_estimator_from_the_command_line(fresh_plugins, tmp_path):
    import numpy as np
    from scipy.stats import trim_mean

    from doge.cli.main import get_cli

    pluginmanager.register_plugin(EncoderPlugin(), name="enc")
    colours = {"src": [(255, 0, 0), (200, 0, 0), (0, 0, 250), (10, 10, 10)], "tgt": [(0, 255, 0), (0, 90, 0)] * 2}
    for side, cs in colours.items():
        (tmp_path / side).mkdir()
        for i, c in enumerate(cs):
            solid(tmp_path / side / f"{i}.png", c)
    base = ["--home", tmp_path / "home", "--quiet", "gap", "create", "g", "--src", tmp_path / "src"]
    argv = [*base, "--tgt", tmp_path / "tgt", "--encoder", "mean-colour", "--workers", "0", "--json"]
    argv += ["--estimator", "trimmed-mean", "--estimator-option", "trim=0.25"]
    result = CliRunner().invoke(get_cli(), list(map(str, argv)))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["provenance"]["estimator"] == {"name": "trimmed-mean", "params": {"trim": 0.25}}
    from doge.api import load_gap

    vector = load_gap("g", home=tmp_path / "home").vector.numpy()
    # trim_mean cuts int(0.25 * 4) = 1 value off each end of each coordinate, as the estimator does
    expected = trim_mean(np.array(colours["tgt"]) / 255, 0.25) - trim_mean(np.array(colours["src"]) / 255, 0.25)
    assert vector == pytest.approx(expected, abs=1e-6)
    bad = CliRunner().invoke(get_cli(), list(map(str, [*argv[:-2], "--estimator-option", "cut=0.2"])))
    assert bad.exit_code != 0 and bad.output.strip().splitlines()[-1].endswith("its options: trim=0.1")


class ThresholdControl:
    """A third-party control that does not subclass doge's Control: black and white at ``level``."""

    name = "threshold"
    uses_controlnet = True
    default_controlnet: str | None = None  # set to the test's own ControlNet

    def __init__(self, control_dir=None, device="cpu", level: int = 128):
        self.level = level

    def make(self, image, size, source_path, geometry):
        from PIL import Image

        grey = geometry.apply(image, Image.Resampling.BICUBIC).convert("L")
        return grey.point(lambda v: 255 if v >= self.level else 0).convert("RGB")

    def resolve_controlnet(self, override=None):
        return override or self.default_controlnet

    def describe(self):
        return {"name": self.name, "options": {"level": self.level}}


class ThresholdPlugin:
    @hookimpl
    def register_controls(self, register):
        register("threshold", ThresholdControl)


def test_a_third_party_control_renders_end_to_end_with_its_own_controlnet(
    fresh_plugins, gap_home, tiny_model, net, domains, tmp_path, monkeypatch
):
    import numpy as np
    from PIL import Image

    from doge.cli.main import get_cli

    monkeypatch.setattr(ThresholdControl, "default_controlnet", str(net))
    pluginmanager.register_plugin(ThresholdPlugin(), name="threshold-plugin")

    def render(out, *args):
        argv = ["--home", gap_home, "--quiet", "render", "--gap", "real->painting", "--src", domains["real"]]
        argv += ["--out", out, "--model", tiny_model, "--size", "64", "--steps", "2", "--limit", "1"]
        return CliRunner().invoke(get_cli(), list(map(str, [*argv, "--control", "threshold", *args])))

    made = {}
    for level in (60, 200):
        result = render(tmp_path / str(level), "--control-option", f"threshold.level={level}")
        assert result.exit_code == 0, result.output
        (line,) = [json.loads(x) for x in (tmp_path / str(level) / "manifest.jsonl").read_text().splitlines()]
        assert line["controls"] == [
            {"name": "threshold", "options": {"level": level}, "controlnet": str(net), "scale": 1.0}
        ]
        source = Image.open(line["source"]).convert("RGB").resize((64, 64), Image.Resampling.BICUBIC).convert("L")
        (control_map,) = (tmp_path / str(level) / "controls").iterdir()
        expected = np.where(np.asarray(source) >= level, 255, 0)
        assert (np.asarray(Image.open(control_map))[..., 0] == expected).all()
        made[level] = np.asarray(Image.open(tmp_path / str(level) / line["image"]), dtype=int)
    assert np.abs(made[60] - made[200]).max() > 0  # the option reached the ControlNet's input

    unknown = render(tmp_path / "x", "--control-option", "threshold.lvl=3")
    assert unknown.exit_code != 0 and unknown.output.strip().splitlines()[-1].endswith("its options: level=128")
    unused = render(tmp_path / "y", "--control-option", "canny.low=50")
    assert unused.exit_code != 0 and "does not use" in unused.output


def test_a_text_encoder_plugin_drives_a_text_gap(fresh_plugins, tmp_path):
    pluginmanager.register_plugin(EncoderPlugin(), name="enc")
    pluginmanager.register_plugin(TextEncoderPlugin(), name="txt")
    (tmp_path / "src").mkdir()
    solid(tmp_path / "src/a.png", (255, 0, 0))
    from doge.api import create_text_gap

    gap = create_text_gap(
        "red->text",
        src=tmp_path / "src",
        tgt_text="a {} of g",
        classes="bb,rr",
        encoder="mean-colour",
        home=tmp_path / "home",
        progress=False,
        workers=0,
    )
    # target texts "a bb of g", "a rr of g": mean letter counts (1, 1, 1); the red image is (1, 0, 0)
    assert torch.allclose(gap.vector, torch.tensor([0.0, 1.0, 1.0]))
    assert gap.provenance["text_encoder"]["model"] == "letter-count"


def test_the_plugin_contract_offers_everything_from_one_cheap_import():
    """``doge.plugin`` is the one module a plugin author imports from; importing it pulls in no
    torch or numpy (plugins load even for ``doge --help``), and every name it lists resolves."""
    code = (
        "import sys\n"
        "import doge.plugin as contract\n"
        "heavy = [m for m in ('torch', 'numpy', 'transformers', 'diffusers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "missing = [n for n in contract.__all__ if getattr(contract, n, None) is None]\n"
        "assert not missing, missing\n"
        "from doge.data.embeddings import Embeddings\n"
        "from doge.rendering.control import Control\n"
        "assert contract.Embeddings is Embeddings and contract.Control is Control\n"
        "assert contract.estimators.mean_gap.__module__ == 'doge.gaps.estimators'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_a_control_written_against_the_contract_alone_is_a_control(fresh_plugins, tmp_path):
    from PIL import Image

    from doge.plugin import Control, hookimpl

    class Posterize(Control):
        name = "posterize"
        uses_controlnet = False
        defaults = {"bits": 1}

        def compute(self, image, size):
            return image.resize(size).convert("L").point(lambda v: 255 if v >= 128 else 0).convert("RGB")

    class PosterizePlugin:
        @hookimpl
        def register_controls(self, register):
            register("posterize", Posterize)

    pluginmanager.register_plugin(PosterizePlugin(), name="posterize-plugin")
    control = pluginmanager.get("controls", "posterize")(control_dir=None, device="cpu")
    assert pluginmanager.options("controls", "posterize")["bits"].default == 1
    made = control.make(Image.new("RGB", (8, 8), (200, 200, 200)), (4, 4), tmp_path / "a.png")
    assert made.size == (4, 4) and made.getpixel((0, 0)) == (255, 255, 255)
