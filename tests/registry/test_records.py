"""Records that cross the registry's edge pass one schema per kind (registry/records.py): a bundle or a
pull holding a malformed evaluation, preview, plot, provenance, label or alias is refused in one line
naming the record and the field, and nothing is stored. A malformed record already stored (another
tool wrote the database) shows as damaged in the CLI and in doge serve, never a traceback or a 500,
and `doge registry check` lists it."""

import io
import json
import zipfile
from datetime import datetime, timezone

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import serve_in_thread
from PIL import Image
from sqlalchemy import update

from doge.cli.main import get_cli
from doge.errors import DogeError
from doge.registry import Registry
from doge.registry.bundles import MANIFEST, import_bundle, write_bundle
from doge.registry.models import AliasRow, AttachmentRow, AuditRow, EvaluationRow, GapRow, LabelRow

NAME = "real->painting"
REF = f"{NAME}@v1"


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    return buffer.getvalue()


def evaluation(ref: str = REF) -> dict:
    return {
        "gap": ref,
        "estimator": "mean",
        "created_at": "2026-12-01T10:00:00Z",
        "source": {"folder": "held/real", "images": 6, "digest": "a" * 64},
        "target": {"folder": "held/painting", "images": 6, "digest": "b" * 64},
        "encoder": {"plugin": "clip"},
        "transfer": {"best_weight": 1.5, "accuracy_at_best": 0.8, "centroid_ratio_at_best": 0.4},
        "stability": {"cosine_mean": 0.97, "images_needed": 4},
        "estimators": {"best": "mean"},
    }


def fill(registry: Registry) -> None:
    """NAME@v1 with an evaluation, its plot and a preview; NAME@v2 beside it."""
    rng = np.random.default_rng(0)
    registry.create(NAME, rng.normal(size=8).astype(np.float32), {"estimator": {"name": "mean"}})
    registry.create(NAME, rng.normal(size=8).astype(np.float32), {"estimator": {"name": "mean"}})
    record = registry.add_evaluation(REF, evaluation())
    registry.add_attachment(REF, png(), "plot", {"evaluation_id": record["evaluation_id"]}, record["evaluation_id"])
    registry.add_attachment(REF, png(), "preview", {"n": 1, "controls": ["canny"], "seed": 0})
    registry.tag(REF, "prod")
    registry.label(REF, {"team": "vision"})


def everything(registry: Registry):
    return [gv.to_json() for gv in registry.list()], sorted(p.name for p in registry.blobs.root.rglob("*"))


@pytest.fixture
def bundle(tmp_path):
    source = Registry(home=tmp_path / "source")
    fill(source)
    path = tmp_path / "lib.doge"
    write_bundle(source, [REF], path)
    source.close()
    return path


def rewrite(path, out, change):
    with zipfile.ZipFile(path) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    manifest = json.loads(members.pop(MANIFEST))
    change(manifest["entries"][0])
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(MANIFEST, json.dumps(manifest))
        for name, data in members.items():
            zf.writestr(name, data)
    return out


def cli(home, *args):
    return CliRunner().invoke(get_cli(), ["--home", str(home), "--quiet", *map(str, args)])


def one_line_refusal(result, *says):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for text in says:
        assert text in lines[0], lines[0]


BAD_BUNDLE_RECORDS = [
    # (what to change in the manifest entry, the field the refusal names)
    (lambda e: e["evaluations"][0].update(transfer="oops"), "evaluation 1: field 'transfer' must be an object"),
    (
        lambda e: e["evaluations"][0]["transfer"].update(accuracy_at_best="high"),
        "field 'transfer.accuracy_at_best' must be a number, got str",
    ),
    (lambda e: e["evaluations"][0].update(created_at=5), "field 'created_at' must be text, got int"),
    (lambda e: e["evaluations"][0].update(source=[1]), "field 'source' must be an object, got list"),
    (
        lambda e: e["evaluations"][0]["source"].update(images="three"),
        "field 'source.images' must be an integer, got str",
    ),
    (lambda e: e["evaluations"][0]["transfer"].update(accuracy_at_best=7), "from 0 to 1, got 7"),
    (
        lambda e: e["evaluations"][0]["transfer"].update(centroid_ratio_at_best=-1),
        "field 'transfer.centroid_ratio_at_best' must be at least 0, got -1",
    ),
    (lambda e: e["evaluations"][0].update(sneaky=1), "field 'sneaky' is not a field this doge knows"),
    (lambda e: e["evaluations"][0]["transfer"].pop("best_weight"), "field 'transfer.best_weight' is missing"),
    (lambda e: e["attachments"][1]["settings"].update(controls=5), "preview 2: field 'settings.controls'"),
    (lambda e: e["attachments"][0]["settings"].update(evaluation_id="x"), "plot 1: field 'settings.evaluation_id'"),
    (lambda e: e["provenance"].update(source={"images": -3}), "provenance: field 'source.images' must be from 0"),
]


@pytest.mark.parametrize("change, says", BAD_BUNDLE_RECORDS)
def test_a_bundle_with_a_malformed_record_is_refused_naming_it_and_nothing_is_stored(bundle, tmp_path, change, says):
    bad = rewrite(bundle, tmp_path / "bad.doge", change)
    home = tmp_path / "mine"
    result = cli(home, "gap", "import", bad)
    one_line_refusal(result, "entry 1 of doge-bundle.json", REF, says)
    registry = Registry(home=home)
    assert everything(registry) == ([], [])


def test_a_bundle_with_a_nan_in_an_evaluation_is_refused(bundle, tmp_path):
    def nan(e):
        e["evaluations"][0]["transfer"]["centroid_ratio_at_best"] = float("nan")

    bad = rewrite(bundle, tmp_path / "bad.doge", nan)  # json.dumps writes NaN, json.loads reads it
    registry = Registry(home=tmp_path / "mine")
    with pytest.raises(DogeError, match="'transfer.centroid_ratio_at_best' must be a finite number"):
        import_bundle(registry, bad)
    assert everything(registry) == ([], [])


def test_a_good_bundle_still_imports_whole(bundle, tmp_path):
    registry = Registry(home=tmp_path / "mine")
    import_bundle(registry, bundle)
    assert [e["transfer"]["accuracy_at_best"] for e in registry.evaluations(REF)] == [0.8]
    assert sorted(a["kind"] for a in registry.attachments(REF)) == ["plot", "preview"]


def test_a_python_caller_cannot_store_a_malformed_evaluation_or_preview(registry):
    fill(registry)
    bad = {**evaluation(), "transfer": {"best_weight": 1.0, "accuracy_at_best": "high", "centroid_ratio_at_best": 1}}
    with pytest.raises(DogeError, match="'transfer.accuracy_at_best' must be a number"):
        registry.add_evaluation(REF, bad)
    with pytest.raises(DogeError, match="settings: field 'controls' must be a list"):
        registry.add_attachment(REF, png(), "preview", {"controls": 5})
    assert len(registry.evaluations(REF)) == 1


# -- malformed records already stored (another tool wrote the database) ---------------------------


ALL_KINDS = ("evaluation", "preview", "plot", "provenance", "label", "alias", "history")


def damage_every_kind(registry: Registry, kinds=ALL_KINDS) -> None:
    """One malformed stored record of each kind, written past doge as another tool would."""
    with registry._tx(write=True) as s:
        v1 = s.query(GapRow).filter_by(name=NAME, version=1).one().id
        v2 = s.query(GapRow).filter_by(name=NAME, version=2).one().id
        bad_eval = {**evaluation(), "transfer": "oops", "created_at": 5}
        changes = {
            "evaluation": update(EvaluationRow)
            .where(EvaluationRow.version_id == v1)
            .values(metrics=json.dumps(bad_eval)),
            "preview": update(AttachmentRow)
            .where(AttachmentRow.version_id == v1, AttachmentRow.kind == "preview")
            .values(settings=json.dumps({"controls": 5, "n": "two"})),
            "plot": update(AttachmentRow)
            .where(AttachmentRow.version_id == v1, AttachmentRow.kind == "plot")
            .values(settings="{not json"),
            "provenance": update(GapRow).where(GapRow.id == v2).values(provenance='{"estimator": 5, "source": [1]'),
            "label": update(LabelRow).where(LabelRow.version_id == v1).values(value=""),
        }
        for kind in kinds:
            if kind in changes:
                s.execute(changes[kind])
        if "alias" in kinds:
            s.add(AliasRow(name=NAME, alias="Not An Alias", version_id=v2))
        if "history" in kinds:
            s.add(
                AuditRow(
                    name=NAME,
                    version=1,
                    action="label-set",
                    before="{oops",
                    after="[]",
                    who="x",
                    at=datetime.now(timezone.utc),
                )
            )


@pytest.fixture
def damaged(registry):
    fill(registry)
    damage_every_kind(registry)
    return registry


def test_registry_check_lists_each_damaged_record(damaged):
    from doge.registry.fsck import check

    report = check(damaged)
    messages = [p["message"] for p in report.problems if p["kind"] == "damaged-record"]
    assert not report.ok
    for says in [
        "evaluation 1 of real->painting@v1 is damaged: field 'created_at' must be text",
        "preview 2 of real->painting@v1 is damaged",
        "plot 1 of real->painting@v1 is damaged: the stored settings is not valid JSON",
        "real->painting@v2: the stored provenance is damaged",
        "real->painting@v1: a label is damaged",
        "'Not An Alias' is damaged",
        "is damaged: its before or after is not valid JSON",
    ]:
        assert any(says in m for m in messages), (says, messages)


def test_the_cli_shows_damaged_records_without_a_traceback(damaged):
    home, url = damaged.home, None if damaged.url.startswith("sqlite") else damaged.url
    extra = [] if url is None else ["--registry", url]
    for args in [
        ["gap", "show", REF],
        ["gap", "show", f"{NAME}@v2"],
        ["gap", "compare", REF, f"{NAME}@v2"],
        ["gap", "compare", REF, "--json"],
        ["gap", "history", NAME],
        ["gap", "list"],
        ["gap", "list", "--json"],
        ["registry", "check"],
    ]:
        result = cli(home, *extra, *args)
        assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
        assert "Traceback" not in result.output, args
    shown = cli(home, *extra, "gap", "show", REF)
    assert "evaluation 1 of real->painting@v1 is damaged" in shown.output
    compared = cli(home, *extra, "gap", "compare", REF)
    assert "is damaged" in compared.output


def test_serve_shows_damaged_records_and_never_answers_500(damaged):
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from doge.serve.app import create_app

    client = TestClient(create_app(damaged), base_url="http://127.0.0.1", raise_server_exceptions=False)
    answers = {
        path: client.get(path)
        for path in [
            "/",
            "/compare?ref=real-%3Epainting@v1&ref=real-%3Epainting@v2",
            "/gaps/real-%3Epainting",
            "/gaps/real-%3Epainting@v1",
            "/gaps/real-%3Epainting@v2",
            "/gaps/real-%3Epainting@v1?diff=real-%3Epainting@v2",
            "/api/gaps",
            "/api/gaps/real-%3Epainting@v1",
            "/api/gaps/real-%3Epainting@v2",
            "/api/gaps/real-%3Epainting/history",
            "/api/compare?ref=real-%3Epainting@v1",
            "/api/gaps/real-%3Epainting@v1/attachments",
            "/api/gaps/real-%3Epainting@v1/safetensors",
            "/api/gaps/real-%3Epainting@v1/bundle",
            "/api/gaps/real-%3Epainting@v2/bundle",
            *(f"/api/gaps/real-%3Epainting@v1/attachments/{a['id']}" for a in damaged.attachments(REF)),
            "/static/style.css",
        ]
    }
    assert {p: r.status_code for p, r in answers.items() if r.status_code >= 500} == {}
    assert "evaluation 1 of real-&gt;painting@v1 is damaged" in answers["/gaps/real-%3Epainting@v1"].text
    assert "is damaged" in answers["/compare?ref=real-%3Epainting@v1&ref=real-%3Epainting@v2"].text
    json.loads(answers["/api/gaps"].text)  # still one JSON document
    assert "damaged" in answers["/api/gaps/real-%3Epainting@v1"].json()["evaluations"][0]


@pytest.fixture
def serving(registry):
    """doge serve on a loopback port (uvicorn in a thread) over a registry whose stored evaluation
    of NAME@v1 and provenance of NAME@v2 another tool broke."""
    pytest.importorskip("uvicorn")
    from doge.serve.app import create_app

    fill(registry)
    damage_every_kind(registry, ("evaluation", "provenance"))
    with serve_in_thread(create_app(registry)) as url:
        yield url


def test_a_pull_from_a_doge_serve_holding_malformed_records_is_refused_and_stores_nothing(serving, tmp_path):
    home = tmp_path / "mine"
    assert cli(home, "remote", "add", "team", serving).exit_code == 0
    result = cli(home, "gap", "pull", f"team:{REF}")
    one_line_refusal(result, REF, "evaluation 1", "is damaged", "field 'created_at' must be text")
    result = cli(home, "gap", "pull", f"team:{NAME}@v2")
    one_line_refusal(result, f"{NAME}@v2", "provenance")
    assert everything(Registry(home=home)) == ([], [])
