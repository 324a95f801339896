"""Hypothesis over every record kind that crosses the registry's edge (bundles and pulls) and over
doge serve's request bodies and query strings: a hostile record is refused in one line with nothing
stored, or it is stored and every reader still works; serve never answers 500."""

import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_records import REF, fill

from doge.errors import DogeError
from doge.registry import Registry
from doge.registry.bundles import MANIFEST, import_bundle, write_bundle
from doge.registry.copying import IncomingVersion
from doge.registry.http_remote import HttpRegistry

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SLOW_FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)

# where in a bundle entry a hostile value goes: (record kind, path of keys)
PLACES = [
    ("evaluation", ["evaluations", 0]),
    ("evaluation", ["evaluations", 0, "transfer"]),
    ("evaluation", ["evaluations", 0, "transfer", "accuracy_at_best"]),
    ("evaluation", ["evaluations", 0, "transfer", "best_weight"]),
    ("evaluation", ["evaluations", 0, "transfer", "centroid_ratio_at_best"]),  # bounded below only
    ("evaluation", ["evaluations", 0, "source"]),
    ("evaluation", ["evaluations", 0, "source", "images"]),
    ("evaluation", ["evaluations", 0, "stability"]),
    ("evaluation", ["evaluations", 0, "stability", "cosine_mean"]),
    ("evaluation", ["evaluations", 0, "estimators"]),
    ("evaluation", ["evaluations", 0, "created_at"]),
    ("evaluation", ["evaluations", 0, "surprise"]),
    ("plot", ["attachments", 0, "settings"]),
    ("plot", ["attachments", 0, "settings", "evaluation_id"]),
    ("plot", ["attachments", 0, "evaluation_id"]),
    ("preview", ["attachments", 1, "settings"]),
    ("preview", ["attachments", 1, "settings", "controls"]),
    ("preview", ["attachments", 1, "settings", "n"]),
    ("preview", ["attachments", 1, "created_at"]),
    ("provenance", ["provenance"]),
    ("provenance", ["provenance", "source"]),
    ("provenance", ["provenance", "estimator"]),
    ("label", ["labels"]),
    ("label", ["labels", "team"]),
    ("alias", ["aliases"]),
    ("alias", ["aliases", 0]),
    ("version", ["description"]),
    ("version", ["created_by"]),
]


def put(entry: dict, path: list, value) -> None:
    target = entry
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


@pytest.fixture(scope="module")
def base_bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundle")
    source = Registry(home=folder / "source")
    fill(source)
    path = folder / "lib.doge"
    write_bundle(source, [REF], path)
    source.close()
    with zipfile.ZipFile(path) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    return json.loads(members.pop(MANIFEST)), members


def readers_work(registry: Registry) -> None:
    """What gap show, gap compare and serve read: none of it may raise."""
    from doge.quality.summary import best, compare_rows, summary

    for gv in registry.list():
        evaluations = registry.evaluations(gv)
        [summary(e) for e in evaluations]
        best(evaluations)
        registry.attachments(gv)
        compare_rows(registry, [gv.ref])
        registry.history(gv.name)


def try_import(base_bundle, place: int, value) -> None:
    manifest, members = base_bundle
    manifest = json.loads(json.dumps(manifest))
    entry = manifest["entries"][0]
    _, path = PLACES[place]
    # attachments are sorted by id in the bundle: plot first (it was added first), then the preview
    put(entry, path, value)
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "bad.doge"
        with zipfile.ZipFile(bad, "w") as zf:
            zf.writestr(MANIFEST, json.dumps(manifest))
            for name, data in members.items():
                zf.writestr(name, data)
        registry = Registry(home=Path(tmp) / "home")
        try:
            import_bundle(registry, bad)
        except DogeError as e:
            assert "\n" not in str(e)
            assert registry.list() == [] and not any((Path(tmp) / "home" / "blobs").rglob("*.*"))
        else:
            readers_work(registry)
        finally:
            registry.close()


ONE_SIDED = PLACES.index(("evaluation", ["evaluations", 0, "transfer", "centroid_ratio_at_best"]))


@FUZZ
@given(place=st.integers(0, len(PLACES) - 1), value=json_values)
@example(place=ONE_SIDED, value=-1)  # a bound on one side only: its message once raised a TypeError
def test_fuzzed_records_in_a_bundle_are_refused_whole_or_read_fine(base_bundle, place, value):
    try_import(base_bundle, place, value)


@pytest.mark.slow
@SLOW_FUZZ
@given(place=st.integers(0, len(PLACES) - 1), value=json_values)
def test_fuzzed_records_in_a_bundle_many_examples(base_bundle, place, value):
    try_import(base_bundle, place, value)


# -- pulls: what an HTTP remote answers, and the copies it hands to add_versions ------------------


@FUZZ
@given(value=json_values, key=st.sampled_from(["name", "version", "sha256", "dim", "created_at", "aliases", "labels"]))
def test_a_fuzzed_version_from_an_http_remote_is_refused_in_one_line_or_read(value, key):
    listed = {
        "name": "real->painting",
        "version": 1,
        "ref": "real->painting@v1",
        "sha256": "a" * 64,
        "dim": 8,
        "description": "",
        "created_at": "2026-12-01T10:00:00Z",
        "created_by": "ana",
        "aliases": [],
        "labels": {},
        "provenance": {},
    }
    listed[key] = value
    remote = HttpRegistry("http://127.0.0.1:9", "team")
    try:
        gv = remote._gv(listed)
    except DogeError as e:
        assert "\n" not in str(e) and "team" in str(e)
    else:
        assert gv.ref == f"{gv.name}@v{gv.version}"


@FUZZ
@given(evaluation=json_values, settings_=json_values, provenance=json_values)
def test_fuzzed_records_in_a_pull_are_refused_whole_or_read_fine(tmp_path, evaluation, settings_, provenance):
    from test_records import evaluation as good_evaluation
    from test_records import png

    from doge.registry import gapfile
    from doge.registry.blobs import sha256_hex

    data = gapfile.encode(np.ones(4, dtype=np.float32), "real->painting", 1, {}, "", None)
    image = png()
    record = {**good_evaluation(), "transfer": evaluation} if isinstance(evaluation, dict) else evaluation
    attachment = {"kind": "preview", "sha256": sha256_hex(image), "data": image, "settings": settings_}
    item = IncomingVersion(
        name="real->painting",
        version=1,
        data=data,
        sha256=sha256_hex(data),
        dim=4,
        description="",
        created_at=__import__("datetime").datetime.now(__import__("datetime").timezone.utc),
        created_by="ana",
        provenance=provenance if isinstance(provenance, dict) else {"source": provenance},
        evaluations=(record,),
        attachments=(attachment,),
    )
    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        registry = Registry(home=tmp)
        try:
            registry.add_versions([item], where="this registry")
        except DogeError as e:
            assert "\n" not in str(e) and "nothing was stored" in str(e)
            assert registry.list() == []
        else:
            readers_work(registry)
        finally:
            registry.close()


# -- serve: request bodies and query strings ----------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from doge.serve.app import create_app
    from doge.serve.auth import parse_tokens

    registry = Registry(home=tmp_path_factory.mktemp("served"))
    fill(registry)
    app = create_app(registry, allow_writes=True, tokens=parse_tokens("alice:s3cret-token-1"))
    yield TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False)
    registry.close()


AUTH = {"Authorization": "Bearer s3cret-token-1", "Content-Type": "application/json"}


@FUZZ
@given(
    route=st.sampled_from(["tag", "untag", "labels"]),
    body=json_values | st.text(max_size=40) | st.binary(max_size=40),
)
def test_fuzzed_write_bodies_never_answer_500(served, route, body):
    content = body if isinstance(body, bytes | str) else json.dumps(body)
    ref = "real-%3Epainting" if route == "untag" else "real-%3Epainting@v2"
    answer = served.post(f"/api/gaps/{ref}/{route}", content=content, headers=AUTH)
    assert answer.status_code < 500, (route, content, answer.text[:200])


@FUZZ
@given(
    path=st.sampled_from(["/", "/compare", "/api/gaps", "/api/compare", "/gaps/real-%3Epainting@v1"]),
    params=st.lists(
        st.tuples(st.sampled_from(["search", "where", "page", "ref", "name", "diff", "x"]), st.text(max_size=30)),
        max_size=4,
    ),
)
def test_fuzzed_query_strings_never_answer_500(served, path, params):
    answer = served.get(path, params=params)
    assert answer.status_code < 500, (path, params, answer.text[:200])
