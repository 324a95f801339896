"""`doge serve`'s routes through Starlette's test client, on SQLite and PostgreSQL: pages, the JSON
API (the CLI's --json keys), downloads, escaping, hidden passwords, and token-guarded writes."""

import hashlib
import io
import json
import re
from urllib.parse import quote

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import serve_in_thread
from PIL import Image

pytest.importorskip("starlette")
from starlette.testclient import TestClient

from doge.cli.main import get_cli
from doge.hooks import hookimpl
from doge.urls import hide_passwords_in

LOCAL = "http://127.0.0.1"  # doge serve answers only the Host names it serves (loopback by default)
SECRET = "hunter2-secret"
PROV = {
    "encoder": {"plugin": "clip", "model": "openai/clip-vit-large-patch14", "dim": 8},
    "estimator": {"name": "mean", "params": {}},
    "source": {"folder": "data/real", "images": 6},
    "origin": {"remote": f"postgresql+psycopg://bob:{SECRET}@db.example:5432/gaps"},
}


def png(color, size=(48, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def evaluation(ref: str, accuracy: float) -> dict:
    return {
        "gap": ref,
        "estimator": "mean",
        "source": {"folder": "held/real", "images": 6, "digest": "a" * 64},
        "target": {"folder": "held/painting", "images": 6, "digest": "b" * 64},
        "encoder": {"plugin": "clip"},
        "transfer": {
            "best_weight": 1.5,
            "accuracy_at_best": accuracy,
            "centroid_ratio_at_best": 0.4,
            "domain_accuracy": 0.9,
        },
        "stability": {"cosine_mean": 0.97, "images_needed": 4},
        "estimators": {"best": "mean"},
    }


def u(ref: str) -> str:
    return quote(ref, safe="@")


@pytest.fixture
def library(registry):
    """real->painting v1..v3 (prod on v2, a preview and an evaluation with its plot on v2),
    day->night v1 (a <script> description, team=vision), and 'other' names to page through."""
    rng = np.random.default_rng(0)
    for i in range(3):
        registry.create("real->painting", rng.normal(size=8).astype(np.float32), PROV, description=f"take {i + 1}")
    registry.create("day->night", rng.normal(size=8).astype(np.float32), PROV, description="<script>alert(1)</script>")
    registry.tag("real->painting@v2", "prod")
    registry.label("day->night@v1", {"team": "vision"})
    registry.label("real->painting@v2", {"team": "graphics"})
    preview = registry.add_attachment("real->painting@v2", png("red"), "preview", {"n": 2, "seed": 42, "steps": 2})
    record = registry.add_evaluation("real->painting@v2", evaluation("real->painting@v2", 0.83))
    plot = registry.add_attachment(
        "real->painting@v2", png("blue", (96, 32)), "plot", {}, evaluation_id=record["evaluation_id"]
    )
    return {"registry": registry, "preview": preview, "plot": plot, "evaluation": record}


@pytest.fixture
def client(library):
    from doge.serve.app import create_app

    return TestClient(create_app(library["registry"]), base_url=LOCAL)


def cli_json(registry, *args):
    argv = ["--home", str(registry.home), "--quiet"]
    if not registry.url.startswith("sqlite"):
        argv += ["--registry", registry.url]
    result = CliRunner().invoke(get_cli(), [*argv, *args, "--json"])
    assert result.exit_code == 0, result.output
    return hide_passwords_in(json.loads(result.output))  # the server shows no password; else the same


def test_library_lists_names_with_latest_version_aliases_best_evaluation_and_preview(client, library):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert re.search(r'<span id="total">2</span> gap names', html)
    assert 'href="/gaps/real-%3Epainting@v3">v3</a>' in html and "3 versions" in html
    assert "prod → v2" in html and "83% classified as target" in html
    assert f'src="/api/gaps/real-%3Epainting@v2/attachments/{library["preview"]["id"]}"' in html
    assert "no preview" in html  # day->night has none


def test_search_and_label_filters_narrow_the_library(client):
    html = client.get("/", params={"search": "NIGHT"}).text
    assert re.search(r'<span id="total">1</span> gap name match', html) and "day-&gt;night" in html
    assert "real-&gt;painting" not in html
    html = client.get("/", params={"where": "team=graphics"}).text
    assert "real-&gt;painting" in html and "day-&gt;night" not in html
    assert ">v2</a>" in html and "1 version matching" in html  # the latest version that matches
    html = client.get("/", params={"search": "no such thing"}).text
    assert "No gap matches" in html
    bad = client.get("/", params={"where": "Team"})
    assert bad.status_code == 400 and "has no &#39;=&#39;" in bad.text


def test_the_library_pages(registry):
    from doge.serve.app import create_app

    for i in range(5):
        registry.create(f"n{i}->m", np.ones(4, dtype=np.float32), {})
    c = TestClient(create_app(registry, per_page=2), base_url=LOCAL)
    first, last = c.get("/").text, c.get("/", params={"page": 3}).text
    assert "n0-&gt;m" in first and "n1-&gt;m" in first and "n2-&gt;m" not in first and "page 1 of 3" in first
    assert "n4-&gt;m" in last and "next →" not in last and "← previous" in last


def test_registry_text_is_escaped_and_no_password_reaches_a_page_or_the_api(client):
    pages = [
        client.get("/").text,
        client.get(f"/gaps/{u('day->night@v1')}").text,
        client.get(f"/gaps/{u('day->night')}").text,
        client.get("/api/gaps").text,
        client.get(f"/api/gaps/{u('day->night@v1')}").text,
    ]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[1]
    for text in pages[:3]:
        assert "<script" not in text
    for text in pages:
        assert SECRET not in text
    assert "bob:***@db.example" in pages[1]  # the URL is shown, its password is not
    assert "script-src 'none'" in client.get("/").headers["content-security-policy"]


def test_version_page_lays_out_provenance_labels_evaluations_plots_previews_and_diff(client, library):
    plot, preview = library["plot"], library["preview"]
    html = client.get(f"/gaps/{u('real->painting@prod')}").text
    assert "real-&gt;painting</a> v2" in html and "take 2" in html and "team=graphics" in html
    assert "<th>encoder.model</th><td>openai/clip-vit-large-patch14</td>" in html
    assert f"/api/gaps/real-%3Epainting@v2/attachments/{preview['id']}" in html
    assert f"/api/gaps/real-%3Epainting@v2/attachments/{plot['id']}" in html
    assert "83% classified as target" in html and "seed 42" in html
    for attachment, color in ((preview, (255, 0, 0)), (plot, (0, 0, 255))):
        r = client.get(f"/api/gaps/{u('real->painting@v2')}/attachments/{attachment['id']}")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert hashlib.sha256(r.content).hexdigest() == attachment["sha256"]
        assert Image.open(io.BytesIO(r.content)).getpixel((0, 0)) == color
    diff = client.get(f"/gaps/{u('real->painting@v2')}", params={"diff": "real->painting@v1"}).text
    assert re.search(r"<th>cosine</th><td>-?\d\.\d{4}</td>", diff)
    assert 'download: <a href="/api/gaps/real-%3Epainting@v2/safetensors">' in html


def test_name_page_has_versions_aliases_and_history_as_a_timeline(client):
    html = client.get(f"/gaps/{u('real->painting')}").text
    assert html.index(">v3</a>") < html.index(">v1</a>")  # newest first
    assert "prod → v2" in html
    timeline = html[html.index('<ol class="timeline">') :]
    assert timeline.count("<li>") == 5  # 3 created, prod set, a label
    assert "alias-set" in timeline and "version-created" in timeline


def test_api_has_the_cli_json_keys_and_values(client, library):
    registry = library["registry"]
    assert client.get("/api/gaps").json() == cli_json(registry, "gap", "list")
    assert client.get("/api/gaps", params={"where": "team=vision"}).json() == cli_json(
        registry, "gap", "list", "--where", "team=vision"
    )
    shown = client.get(f"/api/gaps/{u('real->painting@prod')}").json()
    assert shown == cli_json(registry, "gap", "show", "real->painting@prod")
    assert [p["id"] for p in shown["previews"]] == [library["preview"]["id"]]
    assert client.get(f"/api/gaps/{u('real->painting')}/history").json() == cli_json(
        registry, "gap", "history", "real->painting"
    )
    refs = ["real->painting@v2", "day->night"]
    compared = client.get("/api/compare", params=[("ref", r) for r in refs]).json()
    assert compared == cli_json(registry, "gap", "compare", *refs)
    assert compared[0]["accuracy_at_best"] == 0.83 and compared[1]["evaluated"] is False
    html = client.get("/compare", params=[("ref", r) for r in refs]).text
    assert "0.83" in html and "not evaluated" in html


def test_mistakes_are_one_line_with_the_fix(client):
    r = client.get(f"/api/gaps/{u('real->paintin')}")
    assert r.status_code == 404 and "did you mean 'real->painting'" in r.json()["error"]
    r = client.get(f"/gaps/{u('real->painting@v9')}")
    assert r.status_code == 404 and "has versions v1, v2, v3" in r.text and "Traceback" not in r.text
    r = client.get(f"/api/gaps/{u('real->painting@v2')}/attachments/999")
    assert r.status_code == 404 and "has no preview or plot 999" in r.json()["error"]
    assert client.get("/api/compare").status_code == 400


def test_a_preview_from_the_tiny_model_says_its_images_are_noise(client, library):
    registry = library["registry"]
    registry.add_attachment("real->painting@v1", png("green"), "preview", {"n": 1, "tiny_model": True})
    assert "the images are noise" in client.get(f"/gaps/{u('real->painting@v1')}").text
    assert "the images are noise" not in client.get(f"/gaps/{u('real->painting@v2')}").text


def test_preview_rm_leaves_plots_alone(library):
    registry, plot = library["registry"], library["plot"]
    result = CliRunner().invoke(
        get_cli(),
        ["--home", str(registry.home), *([] if registry.url.startswith("sqlite") else ["--registry", registry.url]),
         "gap", "preview", "real->painting@v2", "--rm", str(plot["id"])],
    )  # fmt: skip
    assert result.exit_code == 1 and f"plot {plot['id']} of gap real->painting@v2 is not a preview" in result.output
    assert [a["id"] for a in registry.attachments("real->painting@v2", "plot")] == [plot["id"]]


def test_a_corrupted_preview_is_refused_not_served(client, library):
    registry, preview = library["registry"], library["preview"]
    path = registry.blobs.path(preview["sha256"], ".png")
    path.write_bytes(png("green"))
    r = client.get(f"/api/gaps/{u('real->painting@v2')}/attachments/{preview['id']}")
    assert r.status_code == 500 and "corrupted" in r.json()["error"]


def test_downloads_are_the_version_file_and_a_bundle(client, library, tmp_path):
    from doge.registry import Registry
    from doge.registry.bundles import import_bundle

    gv = library["registry"].resolve("real->painting@prod")
    r = client.get(f"/api/gaps/{u('real->painting@prod')}/safetensors")
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == gv.sha256
    assert 'filename="real_to_painting_v2.safetensors"' in r.headers["content-disposition"]
    bundle = tmp_path / "b.doge"
    bundle.write_bytes(client.get(f"/api/gaps/{u('real->painting@v2')}/bundle").content)
    other = Registry(home=tmp_path / "other")
    placed = import_bundle(other, bundle)
    assert [p.stored.ref for p in placed] == ["real->painting@v2"] and placed[0].stored.sha256 == gv.sha256


class Recorder:
    def __init__(self):
        self.events = []

    @hookimpl
    def gap_event(self, event, registry):
        self.events.append(event)


def test_writes_are_refused_unless_allowed_and_need_a_token(library):
    from doge import pluginmanager
    from doge.errors import DogeError
    from doge.serve.app import create_app, parse_tokens

    registry = library["registry"]
    ref = u("real->painting@v3")
    assert (
        TestClient(create_app(registry), base_url=LOCAL)
        .post(f"/api/gaps/{ref}/tag", json={"alias": "prod"})
        .status_code
        == 403
    )
    with pytest.raises(DogeError, match="DOGE_SERVE_TOKEN"):
        create_app(registry, allow_writes=True)
    c = TestClient(
        create_app(registry, allow_writes=True, tokens=parse_tokens("alice:s3cret-token-1,ci:other-token-2")),
        base_url=LOCAL,
    )
    assert c.post(f"/api/gaps/{ref}/tag", json={"alias": "prod"}).status_code == 401
    bad = c.post(f"/api/gaps/{ref}/tag", json={"alias": "prod"}, headers={"Authorization": "Bearer nope-nope-nope"})
    assert bad.status_code == 401 and registry.resolve("real->painting@prod").version == 2
    recorder = Recorder()
    pluginmanager.register_plugin(recorder, name="serve-recorder")
    try:
        auth = {"Authorization": "Bearer s3cret-token-1"}
        r = c.post(f"/api/gaps/{ref}/tag", json={"alias": "prod"}, headers=auth)
        assert r.status_code == 200 and r.json()["aliases"] == ["prod"]
        r = c.post(f"/api/gaps/{ref}/labels", json={"set": {"stage": "candidate"}}, headers=auth)
        assert r.json()["labels"] == {"stage": "candidate"}
        r = c.post(f"/api/gaps/{u('real->painting')}/untag", json={"alias": "prod"}, headers=auth)
        assert r.status_code == 200
        r = c.post(f"/api/gaps/{ref}/labels", json={"set": {"Bad Key": "x"}}, headers=auth)
        assert r.status_code == 400 and "invalid label key" in r.json()["error"]
    finally:
        pluginmanager.unregister_plugin("serve-recorder")
    moved = [e for e in registry.history("real->painting") if e["who"] == "alice (doge serve)"]
    assert [e["action"] for e in moved] == ["alias-moved", "label-set", "alias-removed"]
    assert [e["action"] for e in recorder.events] == ["alias-moved", "label-set", "alias-removed"]
    assert (
        "alice (doge serve)"
        in TestClient(create_app(registry), base_url=LOCAL).get(f"/gaps/{u('real->painting')}").text
    )


def test_tokens_are_parsed_with_their_users():
    from doge.errors import DogeError
    from doge.serve.app import parse_tokens

    assert parse_tokens("alice:abcdefgh, ci:12345678") == {"abcdefgh": "alice", "12345678": "ci"}
    assert parse_tokens("abcdefghij") == {"abcdefghij": "token"}
    with pytest.raises(DogeError, match="at least 8"):
        parse_tokens("bob:short")


def test_previews_and_evaluations_travel_with_the_version(library, tmp_path):
    """Push, pull and bundles carry a version's evaluations, its previews and its plots (the plot
    still pointing at its evaluation), sha-checked; copying twice adds nothing."""
    from doge.registry import Registry
    from doge.registry.bundles import import_bundle, write_bundle
    from doge.registry.transfer import pull, push

    src = library["registry"]
    team = Registry(home=tmp_path / "team")
    push(src, ["real->painting@v2"], team, "team")
    push(src, ["real->painting@v2"], team, "team")
    mine = Registry(home=tmp_path / "mine")
    pull(team, ["real->painting@v2"], mine, "team")
    write_bundle(mine, ["real->painting@v2"], tmp_path / "lib.doge")
    other = Registry(home=tmp_path / "other")
    import_bundle(other, tmp_path / "lib.doge")
    import_bundle(other, tmp_path / "lib.doge")
    for reg in (team, mine, other):
        evaluations = reg.evaluations("real->painting@v2")
        assert [e["transfer"]["accuracy_at_best"] for e in evaluations] == [0.83]
        attached = {a["kind"]: a for a in reg.attachments("real->painting@v2")}
        assert sorted(attached) == ["plot", "preview"] and len(reg.attachments("real->painting@v2")) == 2
        assert attached["plot"]["evaluation_id"] == evaluations[0]["evaluation_id"]
        assert attached["preview"]["settings"] == {"n": 2, "seed": 42, "steps": 2}
        for kind, original in (("preview", library["preview"]), ("plot", library["plot"])):
            _, data = reg.read_attachment("real->painting@v2", attached[kind]["id"])
            assert hashlib.sha256(data).hexdigest() == original["sha256"]


def test_a_bundle_with_a_changed_preview_is_refused(library, tmp_path):
    import zipfile

    from doge.errors import DogeError
    from doge.registry import Registry
    from doge.registry.bundles import import_bundle, write_bundle

    write_bundle(library["registry"], ["real->painting@v2"], tmp_path / "lib.doge")
    member = f"attachments/{library['preview']['sha256']}.png"
    with zipfile.ZipFile(tmp_path / "lib.doge") as zin, zipfile.ZipFile(tmp_path / "bad.doge", "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, png("green") if info.filename == member else zin.read(info))
    other = Registry(home=tmp_path / "other")
    with pytest.raises(DogeError, match="does not have the sha256"):
        import_bundle(other, tmp_path / "bad.doge")
    assert other.list() == []


@pytest.fixture
def live(library):
    """The app on a loopback port (uvicorn in a thread)."""
    from doge.serve.app import create_app

    with serve_in_thread(create_app(library["registry"])) as url:
        yield url


def test_a_doge_serve_is_a_read_only_remote(live, library, tmp_path):
    home = tmp_path / "mine"

    def run(*args, ok=True):
        result = CliRunner().invoke(get_cli(), ["--home", str(home), "--quiet", *args])
        if ok:
            assert result.exit_code == 0, result.output
        return result

    run("remote", "add", "team", live)
    listed = json.loads(run("gap", "list", "--remote", "team", "--where", "team=vision", "--json").output)
    assert [v["ref"] for v in listed] == ["day->night@v1"]
    run("gap", "pull", "team:real->painting@prod", "--aliases")
    shown = json.loads(run("gap", "show", "real->painting@prod", "--json").output)
    assert shown["sha256"] == library["registry"].resolve("real->painting@v2").sha256
    assert [e["transfer"]["accuracy_at_best"] for e in shown["evaluations"]] == [0.83]
    assert [p["sha256"] for p in shown["previews"]] == [library["preview"]["sha256"]]
    assert shown["provenance"]["origin"]["remote"] == "team"
    refused = run("gap", "push", "real->painting@v2", "team", ok=False)
    assert refused.exit_code == 1 and "only reads: pull from it" in refused.output and "Traceback" not in refused.output
    missing = run("gap", "pull", "team:real->painting@v9", ok=False)
    assert missing.exit_code == 1 and "has versions v1, v2, v3" in missing.output
