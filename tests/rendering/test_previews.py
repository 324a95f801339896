"""`doge gap preview`: a seeded grid of what a gap does, stored in the blob store, listed by `gap show`;
and the gap_event hook fired after every committed change."""

import io
import json

import pytest
from helpers import cli
from PIL import Image

from doge.hooks import hookimpl

FAST = ["--size", "64", "--steps", "2"]


@pytest.fixture(scope="module")
def home(gap_home):
    """This module's registry (conftest's gap_home) in place of conftest's empty home."""
    return gap_home


def preview(home, tiny_model, domains, *args, ok=True):
    net = tiny_model / "controlnet"
    return cli(
        home,
        "gap",
        "preview",
        "real->painting",
        "--src",
        domains["real"],
        "--model",
        tiny_model,
        "--controlnet",
        net,
        *FAST,
        *args,
        ok=ok,
    )


@pytest.mark.slow  # three tiny renders
def test_preview_is_stored_listed_reproducible_and_removable(home, tiny_model, domains):
    from doge.registry import Registry

    first = json.loads(preview(home, tiny_model, domains, "-n", "2", "--json").output)
    assert first["ref"] == "real->painting@v1" and first["kind"] == "preview"
    assert first["settings"]["n"] == 2 and first["settings"]["steps"] == 2 and first["settings"]["seed"] == 42
    reg = Registry(home=home)
    record, png = reg.read_attachment("real->painting", first["id"])
    assert record["sha256"] == first["sha256"]
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.height > image.width / 4  # 2 rows of source | shifted
    blob = home / "blobs" / first["sha256"][:2] / f"{first['sha256']}.png"
    assert blob.read_bytes() == png  # beside the vectors, content-addressed

    again = json.loads(preview(home, tiny_model, domains, "-n", "2", "--json").output)
    assert again["sha256"] == first["sha256"] and again["id"] != first["id"]  # seeded: same pixels
    other = json.loads(preview(home, tiny_model, domains, "-n", "2", "--seed", "7", "--json").output)
    assert other["sha256"] != first["sha256"]

    shown = json.loads(cli(home, "gap", "show", "real->painting", "--json").output)
    assert [p["id"] for p in shown["previews"]][-3:] == [first["id"], again["id"], other["id"]]
    text = cli(home, "gap", "show", "real->painting").output
    assert f"preview {first['id']}: 2 image(s)" in text and "seed 7" in text
    assert first["settings"]["tiny_model"] is True and "its images are noise" in text

    cli(home, "gap", "preview", "real->painting", "--rm", first["id"])
    assert blob.exists()  # the second preview has the same bytes
    cli(home, "gap", "preview", "real->painting", "--rm", again["id"])
    assert not blob.exists()
    gone = cli(home, "gap", "preview", "real->painting", "--rm", first["id"], ok=False)
    assert gone.exit_code == 1 and f"has no preview or plot {first['id']}" in gone.output
    assert f"attachments: {other['id']}" in gone.output and "Traceback" not in gone.output


def test_a_corrupted_preview_is_refused_on_read(home):
    from doge.errors import IntegrityError
    from doge.registry import Registry

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "purple").save(buffer, format="PNG")
    p = Registry(home=home).add_attachment("real->painting", buffer.getvalue(), "preview", {"n": 1})
    blob = home / "blobs" / p["sha256"][:2] / f"{p['sha256']}.png"
    blob.write_bytes(blob.read_bytes()[:-8] + b"tampered")
    with pytest.raises(IntegrityError, match="corrupted"):
        Registry(home=home).read_attachment(p["ref"], p["id"])
    blob.unlink()
    with pytest.raises(IntegrityError, match="missing"):
        Registry(home=home).read_attachment(p["ref"], p["id"])


def test_preview_mistakes_are_one_line(home, tiny_model, domains, tmp_path):
    result = cli(home, "gap", "preview", "real->painting", ok=False)
    assert result.exit_code == 2 and "give --src DIR" in result.output
    result = cli(home, "gap", "preview", "real->paintin", "--src", domains["real"], ok=False)
    assert result.exit_code == 1 and "did you mean" in result.output and "Traceback" not in result.output


def test_removing_a_version_removes_its_previews_and_their_blobs(tmp_path, tiny_model, domains):
    from doge.api import create_gap, preview
    from doge.registry import Registry

    reg = Registry(home=tmp_path / "h")
    create_gap(
        "a->b", domains["real"], domains["painting"], model=str(tiny_model), registry=reg, progress=False, workers=0
    )
    p = preview(
        "a->b",
        domains["real"],
        n=1,
        model=str(tiny_model),
        controls=["none"],
        size=64,
        steps=2,
        registry=reg,
        progress=False,
    )
    blob = reg.blobs.path(p["sha256"], ".png")
    assert blob.exists()
    reg.remove("a->b@v1")
    assert not blob.exists()


class Recorder:
    def __init__(self):
        self.events = []

    @hookimpl
    def gap_event(self, event, registry):
        self.events.append((event["action"], event["name"], event["version"], event["who"], registry))


class Broken:
    @hookimpl
    def gap_event(self, event, registry):
        raise RuntimeError("chat is down")


@pytest.fixture
def recorder():
    from doge import pluginmanager

    rec = Recorder()
    pluginmanager.register_plugin(rec, name="recorder")
    pluginmanager.register_plugin(Broken(), name="broken")
    try:
        yield rec
    finally:
        pluginmanager.unregister_plugin("recorder")
        pluginmanager.unregister_plugin("broken")


def test_gap_event_fires_after_each_committed_change(registry, recorder, caplog):
    import numpy as np

    from doge.clock import acting_as
    from doge.errors import NotFound
    from doge.pluginmanager import forward_gap_events

    forward_gap_events(registry)  # what the CLI, doge serve and the doge functions do on opening one
    registry.create("x->y", np.ones(4, dtype=np.float32), {})
    registry.create("x->y", np.full(4, 2, dtype=np.float32), {})
    registry.tag("x->y@v1", "prod")
    registry.tag("x->y@v2", "prod")
    with acting_as("alice (doge serve)"):
        registry.label("x->y@v2", {"team": "vision"})
    with pytest.raises(NotFound):
        registry.untag("x->y", "staging")  # refused: nothing committed, no event
    registry.untag("x->y", "prod")
    registry.remove("x->y@v1")
    actions = [(a, v) for a, _, v, _, _ in recorder.events]
    assert actions == [
        ("version-created", 1),
        ("version-created", 2),
        ("alias-set", 1),
        ("alias-moved", 2),
        ("label-set", 2),
        ("alias-removed", 2),
        ("version-removed", 1),
    ]
    assert recorder.events[4][3] == "alice (doge serve)" and recorder.events[3][3] != "alice (doge serve)"
    assert all("password" not in r for *_, r in recorder.events)
    assert "chat is down" in caplog.text  # a broken plugin is a warning; the changes stay
    assert [e["action"] for e in registry.history("x->y")] == [a for a, _ in actions]
