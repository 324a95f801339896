"""Property-based tests of everything that parses what a user hands over: refs and names, URLs,
safetensors headers, bundles. Each input ends in success or one DogeError line — never another
exception, never a secret shown, never a file written outside the registry."""

import io
import json
import struct
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doge.errors import DogeError
from doge.names import parse_ref, parse_weighted_ref, validate_alias, validate_name
from doge.registry import Registry, gapfile
from doge.registry.bundles import MANIFEST, import_bundle, write_bundle
from doge.registry.remotes import normalise_target
from doge.urls import hide_password

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SECRET = "S3cretXq9"


def one_line_or_success(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except DogeError as e:
        message = str(e)
        assert message and "\n" not in message and len(message) < 2000, message
        return None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


# -- refs and names ------------------------------------------------------------------------

ref_like = st.one_of(
    st.text(max_size=300),
    st.from_regex(r"[a-z0-9._>@v-]{0,40}", fullmatch=True),
    st.builds(lambda n, v: f"{n}@v{v}", st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True), st.integers(-5, 10**30)),
)


@FUZZ
@given(ref_like)
def test_refs_and_names_parse_or_say_one_line(text):
    for call in (parse_ref, parse_weighted_ref, validate_name, validate_alias):
        one_line_or_success(call, text)
    ref = one_line_or_success(parse_ref, text)
    if ref is not None and ref.version is not None:
        assert 1 <= ref.version <= 2**31 - 1  # what the registry's integer column holds


# -- URLs ----------------------------------------------------------------------------------

secret_urls = st.builds(
    lambda scheme, user, host, key, extra: f"{scheme}://{user}{host}/db?{extra}{key}={SECRET}",
    st.sampled_from(["postgresql", "postgresql+psycopg", "s3", "sqlite", "mysql"]),
    st.sampled_from(["", "u@", f"u:{SECRET}@"]),
    st.sampled_from(["h", "h:5432", "[::1]:5", ""]),
    st.sampled_from(["password", "sslpassword", "token", "secret_key", "access_token", "PASSWORD"]),
    st.sampled_from(["", "sslmode=require&", "a=b;"]),
)


@FUZZ
@given(secret_urls)
def test_no_secret_survives_hide_password(url):
    shown = hide_password(url)
    assert SECRET not in shown


@FUZZ
@given(st.text(max_size=200))
def test_hide_password_never_raises(text):
    assert isinstance(hide_password(text), str)
    assert isinstance(hide_password("postgresql://" + text), str)


@FUZZ
@given(st.one_of(secret_urls, st.text(max_size=80).map(lambda t: "postgresql://" + t)))
def test_remote_urls_are_accepted_or_refused_in_one_line_without_their_secret(url):
    try:
        normalise_target(url, "s3://bucket/gaps")
    except DogeError as e:
        assert "\n" not in str(e) and SECRET not in str(e)


# -- safetensors headers -------------------------------------------------------------------


def gap_file(metadata=None) -> bytes:
    return (
        gapfile.encode(np.arange(4, dtype=np.float32), "fuzz", 1, {"a": 1}, extras=None)
        if metadata is None
        else (_with_header(metadata))
    )


def _with_header(header) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + np.ones(4, np.float32).tobytes()


@FUZZ
@given(st.data())
def test_mutated_gap_files_decode_or_say_one_line(data):
    good = gap_file()
    how = data.draw(st.sampled_from(["flip", "truncate", "header", "metadata", "tensor"]))
    if how == "flip":
        buf = bytearray(good)
        for _ in range(data.draw(st.integers(1, 8))):
            buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
        blob = bytes(buf)
    elif how == "truncate":
        blob = good[: data.draw(st.integers(0, len(good)))]
    elif how == "header":
        blob = _with_header(data.draw(json_values))
    elif how == "metadata":
        metadata = data.draw(st.dictionaries(st.sampled_from(["doge.format", "doge.name", "doge.provenance", "x"]),
                                             st.text(max_size=30) | json_values.map(json.dumps), max_size=4))  # fmt: skip
        blob = _with_header({"gap": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "__metadata__": metadata})
    else:
        entry = data.draw(st.dictionaries(st.sampled_from(["dtype", "shape", "data_offsets"]), json_values, max_size=3))
        blob = _with_header({"gap": entry})
    gf = one_line_or_success(gapfile.decode, blob, "fuzz.safetensors")
    if gf is not None:
        assert gf.vector.ndim == 1 and np.isfinite(gf.vector).all()
        if gapfile.KEY_PROVENANCE in gf.metadata:
            gapfile.provenance_json(gapfile.provenance_of(gf, "fuzz"))  # storable as it is


# -- bundles -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle_bytes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundle")
    source = Registry(home=folder / "source")
    source.create("real->painting", np.arange(8, dtype=np.float32), {"seed": 0})
    source.create("real->painting", np.arange(8, dtype=np.float32) + 1, {"seed": 1})
    source.tag("real->painting@v2", "prod")
    write_bundle(source, ["real->painting@v1", "real->painting@prod"], folder / "lib.doge")
    return (folder / "lib.doge").read_bytes()


def members_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    registry = Registry(home=root / "home")
    yield root, registry
    registry.close()


def stored(registry) -> tuple:
    blobs = registry.blobs.root
    files = sorted(p.name for p in blobs.rglob("*") if p.is_file()) if blobs.exists() else []
    return [gv.to_json() for gv in registry.list()], files


@FUZZ
@given(st.data())
def test_mutated_bundles_import_or_say_one_line_and_write_nothing_outside(target, bundle_bytes, data):
    root, registry = target
    members = members_of(bundle_bytes)
    manifest = json.loads(members[MANIFEST])
    how = data.draw(st.sampled_from(["flip", "field", "entry", "manifest", "names"]))
    if how == "flip":
        buf = bytearray(bundle_bytes)
        for _ in range(data.draw(st.integers(1, 6))):
            buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
        blob = bytes(buf)
    else:
        if how == "field":
            entry = manifest["entries"][data.draw(st.integers(0, len(manifest["entries"]) - 1))]
            key = data.draw(st.sampled_from([*sorted(entry), "extra"]))
            entry[key] = data.draw(json_values | st.integers(-(2**70), 2**70))
        elif how == "entry":
            manifest["entries"].append(data.draw(json_values))
        elif how == "manifest":
            manifest = data.draw(json_values)
        members[MANIFEST] = json.dumps(manifest).encode()
        if how == "names":
            name = data.draw(st.sampled_from(["../evil", "/abs", "a/../../b", "C:x", "blobs/../../x", "ok/x"]))
            members[name] = b"payload"
        blob = zipped(members)
    path = root / "in.doge"
    path.write_bytes(blob)
    home = registry.home
    outside = {p for p in root.rglob("*") if home not in p.parents}
    before = stored(registry)
    placed = one_line_or_success(import_bundle, registry, path, new_version=data.draw(st.booleans()))
    assert {p for p in root.rglob("*") if home not in p.parents} == outside  # nothing written outside
    assert not (root.parent / "evil").exists() and not (root / "x").exists()
    if placed is None:
        assert stored(registry) == before  # a refused bundle stores nothing
