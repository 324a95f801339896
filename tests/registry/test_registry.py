"""The gap registry: versions, aliases, removal, integrity, export and import."""

import hashlib
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from datetime import timezone

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save, save_file

from doge.errors import DogeError, IntegrityError, NotFound
from doge.names import Ref
from doge.registry import GapVersion, Registry

NAME = "real->painting"


def vec(seed: int, dim: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


def snapshot(registry: Registry):
    """What a user could lose: every live version and every blob file."""
    blobs = sorted(p.name for p in registry.blobs.root.rglob("*")) if registry.blobs.root.exists() else []
    return [gv.to_json() for gv in registry.list()], blobs


# -- create, resolve, load -----------------------------------------------------------------


def test_create_then_resolve_and_load_gives_back_the_vector_and_provenance(registry):
    v = vec(0, dim=16)
    prov = {"encoder": {"model": "tiny"}, "estimator": "mean", "seed": 3, "created_by": "ada"}
    created = registry.create(NAME, v, prov, description="first try")

    got = registry.resolve(NAME)
    assert got == created
    assert (got.name, got.version, got.ref, got.dim) == (NAME, 1, f"{NAME}@v1", 16)
    assert got.provenance == prov and got.description == "first try" and got.created_by == "ada"
    assert got.created_at.tzinfo == timezone.utc
    loaded = registry.load_vector(f"{NAME}@v1")
    assert loaded.dtype == np.float32 and loaded.shape == (16,)
    np.testing.assert_array_equal(loaded, v)
    np.testing.assert_array_equal(registry.load_vector(got), v)


def test_to_json_has_the_stable_keys(registry):
    gv = registry.create(NAME, vec(0), {"seed": 1})
    registry.tag(gv.ref, "prod")
    data = registry.resolve(gv.ref).to_json()
    assert list(data) == [
        "name",
        "version",
        "ref",
        "aliases",
        "sha256",
        "dim",
        "description",
        "created_at",
        "created_by",
        "provenance",
        "labels",
    ]
    assert data["ref"] == f"{NAME}@v1" and data["aliases"] == ["prod"] and data["created_at"].endswith("Z")
    json.dumps(data)  # a script can print it


def test_files_are_where_the_layout_says(home):
    registry = Registry(home=home)
    gv = registry.create(NAME, vec(0), {})
    blob = home / "blobs" / gv.sha256[:2] / f"{gv.sha256}.safetensors"
    assert (home / "registry.db").is_file()
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == gv.sha256
    assert [p for p in (home / "blobs").rglob("*") if p.is_file()] == [blob]  # no temp files left


def test_the_stored_file_describes_itself(registry, tmp_path):
    registry.create(NAME, vec(0), {"estimator": "mean"}, description="d")
    out = tmp_path / "g.safetensors"
    registry.export(NAME, out)
    with safe_open(str(out), framework="numpy") as f:
        meta = f.metadata()
        assert list(f.keys()) == ["gap"]
    assert meta["doge.format"] == "doge-gap/1"
    assert (meta["doge.name"], meta["doge.version"]) == (NAME, "1")
    assert json.loads(meta["doge.provenance"]) == {"estimator": "mean"}


def test_versions_count_up_and_latest_is_the_highest(registry):
    vectors = [vec(i) for i in range(3)]
    assert [registry.create(NAME, v, {}).version for v in vectors] == [1, 2, 3]
    registry.create("day->night", vec(9), {})

    assert registry.resolve(NAME).version == 3
    assert registry.resolve(f"{NAME}@latest").version == 3
    assert registry.resolve(Ref(NAME, version=2)).version == 2
    np.testing.assert_array_equal(registry.load_vector(f"{NAME}@v2"), vectors[1])
    assert [gv.ref for gv in registry.list()] == ["day->night@v1", f"{NAME}@v1", f"{NAME}@v2", f"{NAME}@v3"]
    assert [gv.version for gv in registry.list(NAME)] == [1, 2, 3]
    assert registry.names() == ["day->night", NAME]


def test_a_new_registry_object_sees_what_another_stored(registry, home, registry_url):
    registry.create(NAME, vec(0), {})
    assert Registry(home=home, url=registry_url).resolve(NAME).version == 1


# -- aliases -------------------------------------------------------------------------------


def test_alias_points_at_a_version_and_moves_when_tagged_again(registry):
    for i in range(3):
        registry.create(NAME, vec(i), {})
    assert registry.tag(f"{NAME}@v1", "prod").aliases == ("prod",)
    assert registry.resolve(f"{NAME}@prod").version == 1

    moved = registry.tag(f"{NAME}@v2", "prod")
    assert moved.version == 2 and moved.aliases == ("prod",)
    assert registry.resolve(f"{NAME}@prod").version == 2
    assert registry.resolve(f"{NAME}@v1").aliases == ()
    np.testing.assert_array_equal(registry.load_vector(f"{NAME}@prod"), vec(1))

    registry.untag(NAME, "prod")
    with pytest.raises(NotFound, match="no alias 'prod'"):
        registry.resolve(f"{NAME}@prod")
    with pytest.raises(NotFound, match="has no alias 'prod'"):
        registry.untag(NAME, "prod")


@pytest.mark.parametrize("alias, says", [("latest", "implied"), ("v3", "reserved"), ("Prod!", "invalid alias")])
def test_reserved_or_malformed_aliases_are_refused(registry, alias, says):
    registry.create(NAME, vec(0), {})
    with pytest.raises(DogeError, match=says):
        registry.tag(NAME, alias)


# -- removal -------------------------------------------------------------------------------


def test_removed_version_numbers_are_never_reused(registry):
    registry.create(NAME, vec(0), {})
    second = registry.create(NAME, vec(1), {})
    registry.tag(second.ref, "prod")

    removed = registry.remove(f"{NAME}@prod")
    assert removed.ref == f"{NAME}@v2" and removed.aliases == ("prod",)
    assert not registry.blobs.path(second.sha256).exists()
    with pytest.raises(NotFound, match="removed.*has versions v1 and no aliases"):
        registry.resolve(f"{NAME}@v2")
    assert registry.create(NAME, vec(2), {}).version == 3

    registry.remove(f"{NAME}@v1")
    registry.remove(f"{NAME}@v3")
    assert registry.names() == []
    with pytest.raises(NotFound, match="every version"):
        registry.resolve(NAME)
    assert registry.create(NAME, vec(3), {}).version == 4


def test_removing_one_version_keeps_a_blob_another_still_uses(registry, tmp_path):
    first = registry.create(NAME, vec(0), {})
    registry.export(first.ref, tmp_path / "g.safetensors")
    copy = registry.import_file(tmp_path / "g.safetensors", as_name="copy")
    assert copy.sha256 == first.sha256

    registry.remove(first.ref)
    np.testing.assert_array_equal(registry.load_vector("copy"), vec(0))
    registry.remove("copy")
    assert not registry.blobs.path(first.sha256).exists()


# -- mistakes ------------------------------------------------------------------------------


def test_unknown_refs_say_what_exists(registry):
    registry.create(NAME, vec(0), {})
    registry.create(NAME, vec(1), {})
    registry.tag(NAME, "prod")
    with pytest.raises(NotFound, match=r"did you mean 'real->painting'\?"):
        registry.resolve("real->paintng")
    with pytest.raises(NotFound, match="has versions v1, v2 and aliases prod"):
        registry.resolve(f"{NAME}@v7")
    with pytest.raises(NotFound, match="has versions v1, v2 and aliases prod"):
        registry.resolve(f"{NAME}@staging")


def test_an_empty_registry_says_so(registry):
    with pytest.raises(NotFound, match="registry is empty"):
        registry.resolve(NAME)


@pytest.mark.parametrize(
    "name, says", [("Real Painting", "lowercase letters"), ("real-", "quote"), ("a->b->c", "at most one")]
)
def test_invalid_names_are_refused_with_the_rule(registry, name, says):
    with pytest.raises(DogeError, match=says):
        registry.create(name, vec(0), {})
    assert registry.list() == []


@pytest.mark.parametrize(
    "vector, provenance, says",
    [
        (np.array([1.0, np.nan], dtype=np.float32), {}, "NaN"),
        (np.ones((2, 3), dtype=np.float32), {}, "1-D"),
        (np.array([], dtype=np.float32), {}, "non-empty"),
        (np.array(["a", "b"]), {}, "real numbers"),
        (vec(0), {"when": object()}, "JSON"),
    ],
)
def test_bad_vectors_and_provenance_are_refused_and_use_up_no_version(registry, vector, provenance, says):
    with pytest.raises(DogeError, match=says):
        registry.create(NAME, vector, provenance)
    assert registry.create(NAME, vec(0), {}).version == 1


def test_a_tampered_blob_is_refused(registry):
    gv = registry.create(NAME, vec(0), {})
    blob = registry.blobs.path(gv.sha256)
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0x01  # one bit of the vector
    blob.write_bytes(bytes(data))

    with pytest.raises(IntegrityError) as err:
        registry.load_vector(NAME)
    message = str(err.value)
    assert "\n" not in message
    assert f"{NAME}@v1" in message and str(blob) in message and gv.sha256 in message
    assert hashlib.sha256(bytes(data)).hexdigest() in message


def test_a_missing_blob_is_refused(registry):
    gv = registry.create(NAME, vec(0), {})
    registry.blobs.path(gv.sha256).unlink()
    with pytest.raises(IntegrityError, match="missing"):
        registry.load_vector(NAME)


def test_unreachable_database_is_one_line_that_hides_the_password(tmp_path):
    with pytest.raises(DogeError) as err:
        Registry(home=tmp_path, url="postgresql+psycopg://doge:s3cret@127.0.0.1:1/none")
    assert "s3cret" not in str(err.value) and "***" in str(err.value) and "--registry" in str(err.value)


@pytest.fixture
def closing_server():
    """A TCP port whose server reads the first bytes of each connection, then closes it: what a
    client sees from a killed backend or a server that restarts while it connects."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed at teardown
                return
            with conn:
                conn.recv(1024)

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def test_a_connection_the_server_closes_while_opening_says_so_and_to_retry(tmp_path, closing_server):
    from click.testing import CliRunner

    from doge.cli.main import get_cli

    url = f"postgresql+psycopg://doge:s3cret@127.0.0.1:{closing_server}/gaps"
    result = CliRunner().invoke(get_cli(), ["--home", str(tmp_path), "--registry", url, "gap", "list"])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot open the registry"), result.output
    assert "closed the connection" in lines[0] and "run the command again" in lines[0]
    assert "check the registry URL" not in lines[0] and "s3cret" not in lines[0]
    # a server that is not there at all is still a question of the URL
    with pytest.raises(DogeError, match="check the registry URL") as err:
        Registry(home=tmp_path, url="postgresql+psycopg://doge@127.0.0.1:1/none")
    assert "closed the connection" not in str(err.value)


def test_repr_hides_the_password(tmp_path, monkeypatch):
    monkeypatch.setattr(Registry, "_ensure_schema", lambda self: None)  # no server needed
    reg = Registry(home=tmp_path, url="postgresql+psycopg://doge:s3cret@db.example/gaps")
    assert "s3cret" not in repr(reg) and "***" in repr(reg)
    assert reg.url.endswith("@db.example/gaps")


# -- export and import ---------------------------------------------------------------------


def test_export_then_import_elsewhere_keeps_sha_vector_and_provenance(registry, tmp_path):
    prov = {"encoder": {"model": "tiny"}, "estimator": "mean", "seed": 7}
    gv = registry.create(NAME, vec(5, dim=32), prov, description="paintings")
    out = tmp_path / "out" / "gap.safetensors"
    assert registry.export(NAME, out) == gv
    assert hashlib.sha256(out.read_bytes()).hexdigest() == gv.sha256

    other = Registry(home=tmp_path / "other-home")
    imported = other.import_file(out)
    assert (imported.name, imported.version, imported.sha256) == (NAME, 1, gv.sha256)
    assert imported.description == "paintings"
    assert imported.provenance == {**prov, "imported_from": str(out.resolve())}
    np.testing.assert_array_equal(other.load_vector(NAME), vec(5, dim=32))


def test_import_is_idempotent_and_otherwise_adds_the_next_version(registry, tmp_path):
    registry.create(NAME, vec(0), {})
    registry.export(NAME, tmp_path / "v1.safetensors")
    registry.create(NAME, vec(1), {})
    registry.export(NAME, tmp_path / "v2.safetensors")

    again = registry.import_file(tmp_path / "v2.safetensors")
    assert again.version == 2  # the latest already has these bytes
    third = registry.import_file(tmp_path / "v1.safetensors")
    assert third.version == 3
    assert registry.import_file(tmp_path / "v1.safetensors").version == 3
    assert [gv.version for gv in registry.list(NAME)] == [1, 2, 3]
    np.testing.assert_array_equal(registry.load_vector(NAME), vec(0))


def test_import_of_a_plain_safetensors_needs_a_name(registry, tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"gap": vec(3)}, str(path))
    with pytest.raises(DogeError, match="does not name its gap"):
        registry.import_file(path)
    gv = registry.import_file(path, as_name="day->night")
    assert gv.ref == "day->night@v1" and gv.provenance == {"imported_from": str(path.resolve())}
    np.testing.assert_array_equal(registry.load_vector(gv), vec(3))


def test_export_wants_a_safetensors_file_name(registry, tmp_path):
    registry.create(NAME, vec(0), {})
    with pytest.raises(DogeError, match="safetensors"):
        registry.export(NAME, tmp_path / "gap.pt")
    with pytest.raises(DogeError, match="is a folder"):
        registry.export(NAME, tmp_path)
    assert list(tmp_path.iterdir()) == [tmp_path / "home"]


class _Booby:
    """Unpickling this creates a folder: proof that a file was (or was not) unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def _bad_files(tmp_path):
    marker = tmp_path / "unpickled"
    torch_like = tmp_path / "zip"
    with zipfile.ZipFile(torch_like, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(_Booby(marker)))
    meta = {"doge.name": NAME}
    return marker, {
        "pickle.safetensors": (pickle.dumps(_Booby(marker)), "pickle"),
        "gap.pt": (pickle.dumps(_Booby(marker)), r"\.pt files may hold pickles"),
        "torch-zip.safetensors": (torch_like.read_bytes(), "zip"),
        "two.safetensors": (save({"gap": vec(0), "extra": vec(1)}, meta), "exactly one tensor"),
        "renamed.safetensors": (save({"delta": vec(0)}, meta), "exactly one tensor"),
        "f64.safetensors": (save({"gap": vec(0).astype(np.float64)}, meta), "float32"),
        "f16.safetensors": (save({"gap": vec(0).astype(np.float16)}, meta), "float32"),
        "nan.safetensors": (save({"gap": np.array([1, np.nan], np.float32)}, meta), "NaN"),
        "inf.safetensors": (save({"gap": np.array([1, np.inf], np.float32)}, meta), "infinite"),
        "2d.safetensors": (save({"gap": np.ones((2, 2), np.float32)}, meta), "1-D"),
        "text.safetensors": (b"hello, I am not a tensor file at all", "not a safetensors"),
        "huge-header.safetensors": (struct.pack("<Q", 1 << 40) + b"{}", "not a safetensors"),
        "bad-name.safetensors": (save({"gap": vec(0)}, {"doge.name": "Bad Name"}), "invalid gap name"),
        "bad-prov.safetensors": (save({"gap": vec(0)}, {**meta, "doge.provenance": "[1"}), "not a JSON object"),
        "future.safetensors": (save({"gap": vec(0)}, {**meta, "doge.format": "doge-gap/9"}), "upgrade doge"),
    }


def test_import_refuses_bad_files_and_changes_nothing(registry, tmp_path):
    registry.create(NAME, vec(0), {"kept": True})
    before = snapshot(registry)
    marker, bad = _bad_files(tmp_path)
    for file_name, (data, says) in bad.items():
        path = tmp_path / file_name
        path.write_bytes(data)
        with pytest.raises(DogeError, match=says) as err:
            registry.import_file(path)
        assert str(path) in str(err.value) or "Bad Name" in str(err.value), file_name
        assert "\n" not in str(err.value)
    assert not marker.exists(), "a pickle was unpickled"
    assert snapshot(registry) == before
    np.testing.assert_array_equal(registry.load_vector(NAME), vec(0))


def test_import_of_a_missing_file_says_so(registry, tmp_path):
    with pytest.raises(NotFound, match="no such file"):
        registry.import_file(tmp_path / "nope.safetensors")


# -- packaging -----------------------------------------------------------------------------


def test_the_registry_imports_without_torch():
    code = (
        "import sys, doge.registry; "
        "heavy = [m for m in ('torch', 'transformers', 'diffusers') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


REGISTRY_BASE = {
    "doge",
    "doge.atomic",
    "doge.clock",
    "doge.errors",
    "doge.extras",
    "doge.home",
    "doge.names",
    "doge.urls",
}


def test_creating_a_version_imports_only_the_registry_and_the_base(tmp_path):
    """The registry is the bottom layer: opening one and creating a version imports no plugin, no
    plugin manager, no rendering code (it used to import 42 doge modules, every built-in plugin
    among them, to fire gap_event)."""
    code = (
        "import sys, numpy as np\n"
        "from doge.registry import Registry\n"
        f"reg = Registry(home={str(tmp_path)!r})\n"
        "reg.create('a->b', np.ones(4, dtype=np.float32), {})\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m == 'doge' or m.startswith('doge.'))))\n"
        "print('pluggy' if 'pluggy' in sys.modules else '')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    assert "pluggy" not in out
    imported = set(out)
    above = sorted(m for m in imported if m not in REGISTRY_BASE and not m.startswith("doge.registry"))
    assert not above, f"Registry.create imported modules above the registry: {above}"
    assert len(imported) <= 25, sorted(imported)


def test_commit_listeners_hear_each_committed_change_and_a_failing_one_is_a_warning(registry, caplog):
    heard = []
    registry.on_commit(lambda events, url: heard.append([(e["action"], e["version"]) for e in events]))
    registry.on_commit(lambda events, url: 1 / 0)
    registry.create(NAME, vec(0), {})
    registry.tag(f"{NAME}@v1", "prod")
    with pytest.raises(NotFound):
        registry.untag(NAME, "staging")  # refused: nothing committed, nothing heard
    assert heard == [[("version-created", 1)], [("alias-set", 1)]]
    assert "division by zero" in caplog.text
    assert registry.resolve(f"{NAME}@prod").version == 1  # the failing listener undid nothing


def test_gap_version_is_a_frozen_value():
    gv = GapVersion(NAME, 1, "0" * 64, 8, "", None, "me")
    with pytest.raises(AttributeError):
        gv.version = 2
    assert gv.ref == f"{NAME}@v1"


@pytest.mark.parametrize("header_bytes", [0x280, 0x380, 0x480, 0x580])
def test_a_gap_whose_header_length_starts_like_a_pickle_still_loads(registry, header_bytes):
    """A safetensors file opens with its header's length: 896 bytes is 80 03 ..., as a pickle opens."""
    import struct

    from doge.registry import gapfile

    vector = np.arange(8, dtype=np.float32)
    filler = "x"
    while True:  # grow the provenance until the header is exactly header_bytes long
        data = gapfile.encode(vector, "a", 1, {"note": filler})
        (n,) = struct.unpack("<Q", data[:8])
        if n >= header_bytes:
            break
        filler += "x" * max(1, header_bytes - n)
    if n != header_bytes:  # safetensors pads the header to a multiple of 8: hit it from below
        pytest.skip(f"header padded to {n}")
    gv = registry.create("a", vector, {"note": filler})
    assert registry.read_blob(gv)[:2] == bytes([0x80, header_bytes >> 8])  # the stored blob opens like a pickle
    assert np.array_equal(registry.load_vector(gv), vector)
