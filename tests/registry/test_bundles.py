"""Bundles: several gaps in one .doge file; import checks everything and is all or nothing."""

import json
import stat
import zipfile

import numpy as np
import pytest
from helpers import cli

from doge.errors import DogeError
from doge.registry import Registry, bundles
from doge.registry.bundles import MANIFEST, import_bundle, read_bundle, write_bundle
from doge.registry.copying import VersionConflict

NAME = "real->painting"


def vec(seed: int, dim: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


def snapshot(registry: Registry):
    """What a user could lose or gain: every live version and every blob file."""
    root = registry.blobs.root
    return [gv.to_json() for gv in registry.list()], sorted(p.name for p in root.rglob("*")) if root.exists() else []


def without_origin(provenance: dict) -> dict:
    return {k: v for k, v in provenance.items() if k != "origin"}


@pytest.fixture
def library(tmp_path):
    """A bundle of two versions of NAME (v2 tagged prod) and one of day->night, and their source registry."""
    source = Registry(home=tmp_path / "source")
    source.create(NAME, vec(0), {"estimator": "mean", "seed": 0}, description="first")
    source.create(NAME, vec(1), {"estimator": "median", "seed": 1})
    source.create("day->night", vec(2, dim=4), {"estimator": "pca"})
    source.tag(f"{NAME}@v2", "prod")
    path = tmp_path / "lib.doge"
    write_bundle(source, [f"{NAME}@v1", f"{NAME}@prod", "day->night"], path)
    return source, path


def rewrite(path, out, change):
    """Copy the bundle at ``path`` to ``out``, passing the manifest (as a dict) and every member through ``change``."""
    with zipfile.ZipFile(path) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    manifest = json.loads(members.pop(MANIFEST))
    members = change(manifest, members) or members
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(MANIFEST, json.dumps(manifest))
        for name, data in members.items():
            zf.writestr(name, data)
    return out


def blob_member(manifest, ref):
    return next(e["member"] for e in manifest["entries"] if e["ref"] == ref)


# -- round trip ----------------------------------------------------------------------------


def test_round_trip_keeps_shas_versions_aliases_and_provenance(library, tmp_path):
    source, path = library
    target = Registry(home=tmp_path / "target")
    placed = import_bundle(target, path)

    assert [(p.status, p.stored.ref) for p in placed] == [
        ("added", "day->night@v1"),
        ("added", f"{NAME}@v1"),
        ("added", f"{NAME}@v2"),
    ]
    for orig in source.list():
        copy = target.resolve(orig.ref)
        assert (copy.sha256, copy.dim, copy.aliases, copy.description, copy.created_at, copy.created_by) == (
            orig.sha256,
            orig.dim,
            orig.aliases,
            orig.description,
            orig.created_at,
            orig.created_by,
        )
        assert without_origin(copy.provenance) == orig.provenance
        assert copy.provenance["origin"]["bundle"] == "lib.doge" and copy.provenance["origin"]["ref"] == orig.ref
        np.testing.assert_array_equal(target.load_vector(copy), source.load_vector(orig))
    assert target.resolve(f"{NAME}@prod").version == 2


def test_labels_travel_and_history_tells_where_versions_came_from(library, tmp_path):
    source, _ = library
    source.label(f"{NAME}@v1", {"team": "vision"})
    write_bundle(source, [f"{NAME}@v1", f"{NAME}@v2"], tmp_path / "labelled.doge")
    target = Registry(home=tmp_path / "target")
    import_bundle(target, tmp_path / "labelled.doge")
    assert target.resolve(f"{NAME}@v1").labels == {"team": "vision"}
    entries = [(e["action"], e["version"]) for e in target.history(NAME)]
    assert entries == [("version-created", 1), ("label-set", 1), ("version-created", 2), ("alias-set", 2)]
    assert target.history(NAME)[0]["after"]["source"] == "imported from bundle labelled.doge"


def test_renumbered_and_kept_numbers_never_collide_later(tmp_path, registry):
    source = Registry(home=tmp_path / "source")
    for i in range(5):
        source.create(NAME, vec(i), {})
    for v in (2, 3, 4):
        source.remove(f"{NAME}@v{v}")
    write_bundle(source, [], tmp_path / "gappy.doge")
    registry.create(NAME, vec(9), {})  # v1 here is another vector

    placed = import_bundle(registry, tmp_path / "gappy.doge", new_version=True)
    assert [(p.incoming.ref, p.stored.ref) for p in placed] == [
        (f"{NAME}@v1", f"{NAME}@v6"),
        (f"{NAME}@v5", f"{NAME}@v5"),
    ]
    assert registry.create(NAME, vec(10), {}).version == 7


def test_the_bundle_is_a_zip_of_a_manifest_and_blobs(library):
    source, path = library
    with zipfile.ZipFile(path) as zf:
        names = sorted(zf.namelist())
        manifest = json.loads(zf.read(MANIFEST))
    shas = sorted(gv.sha256 for gv in source.list())
    assert names == sorted([MANIFEST, *(f"blobs/{sha}.safetensors" for sha in shas)])
    assert manifest["format"] == "doge-bundle/1" and manifest["created_at"].endswith("Z")
    prod = next(e for e in manifest["entries"] if e["ref"] == f"{NAME}@v2")
    assert prod["aliases"] == ["prod"] and prod["provenance"] == {"estimator": "median", "seed": 1}
    assert set(prod) >= {"name", "version", "aliases", "sha256", "dim", "description", "provenance", "member"}


def test_without_refs_every_version_is_bundled(library, tmp_path):
    source, _ = library
    write_bundle(source, [], tmp_path / "all.doge")
    assert [e.ref for e in read_bundle(tmp_path / "all.doge").entries] == [gv.ref for gv in source.list()]


def test_importing_twice_changes_nothing(library, registry):
    _, path = library
    import_bundle(registry, path)
    before = snapshot(registry)
    assert {p.status for p in import_bundle(registry, path)} == {"present"}
    assert snapshot(registry) == before


def test_bundle_aliases_are_moved_on_import(library, registry):
    _, path = library
    import_bundle(registry, path)
    registry.tag(f"{NAME}@v1", "prod")
    import_bundle(registry, path)
    assert registry.resolve(f"{NAME}@prod").version == 2


def test_a_conflicting_version_refuses_the_whole_bundle(library, registry):
    _, path = library
    registry.create(NAME, vec(9), {"mine": True})  # NAME@v1 here holds another vector
    before = snapshot(registry)
    with pytest.raises(VersionConflict, match=r"this registry already has real->painting@v1 .*--new-version"):
        import_bundle(registry, path)
    assert snapshot(registry) == before  # day->night was not imported either

    placed = import_bundle(registry, path, new_version=True)
    assert [(p.incoming.ref, p.stored.ref) for p in placed] == [
        ("day->night@v1", "day->night@v1"),
        (f"{NAME}@v1", f"{NAME}@v3"),
        (f"{NAME}@v2", f"{NAME}@v2"),
    ]
    assert registry.resolve(f"{NAME}@v1").provenance == {"mine": True}


# -- what is refused -----------------------------------------------------------------------


def test_a_tampered_blob_is_refused_and_nothing_is_stored(library, registry, tmp_path):
    _, path = library

    def flip_one_byte(manifest, members):
        name = blob_member(manifest, f"{NAME}@v2")
        data = bytearray(members[name])
        data[-1] ^= 0x01  # a value of the vector changes; the zip itself stays valid
        members[name] = bytes(data)

    tampered = rewrite(path, tmp_path / "tampered.doge", flip_one_byte)
    with pytest.raises(DogeError, match="has sha256 .* not the .* promise; the bundle was changed or damaged"):
        import_bundle(registry, tampered)
    assert snapshot(registry) == ([], [])


def test_a_damaged_file_is_refused_in_one_line(library, registry, tmp_path):
    _, path = library
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(next(n for n in zf.namelist() if n.startswith("blobs/")))
    data[info.header_offset + 30 + len(info.filename) + 5] ^= 0xFF  # inside the compressed bytes
    damaged = tmp_path / "damaged.doge"
    damaged.write_bytes(bytes(data))
    with pytest.raises(DogeError, match="damaged") as e:
        import_bundle(registry, damaged)
    assert "\n" not in str(e.value)
    assert snapshot(registry) == ([], [])


@pytest.mark.parametrize("evil", ["../evil", "/etc/x", "blobs/../../evil", "C:/evil", "C:\\evil", "blobs/./x"])
def test_members_with_unsafe_paths_are_refused(library, registry, tmp_path, evil):
    _, path = library
    bad = rewrite(path, tmp_path / "bad.doge", lambda m, members: {**members, evil: b"x"})
    with zipfile.ZipFile(bad) as zf:
        assert evil.replace("\\", "/") in zf.namelist() or evil in zf.namelist()
    with pytest.raises(DogeError, match="unsafe path"):
        import_bundle(registry, bad)
    assert snapshot(registry) == ([], [])
    assert not (tmp_path.parent / "evil").exists() and not (tmp_path / "evil").exists()


def test_symbolic_links_and_unlisted_members_are_refused(library, registry, tmp_path):
    _, path = library

    link = rewrite(path, tmp_path / "link.doge", lambda m, members: members)
    with zipfile.ZipFile(link, "a") as zf:
        info = zipfile.ZipInfo("blobs/link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(DogeError, match="symbolic link"):
        import_bundle(registry, link)

    extra = rewrite(path, tmp_path / "extra.doge", lambda m, members: {**members, "notes.txt": b"hi"})
    with pytest.raises(DogeError, match="'notes.txt' is not listed"):
        import_bundle(registry, extra)
    assert snapshot(registry) == ([], [])


def test_oversize_members_are_refused_before_they_are_read(library, registry, monkeypatch):
    _, path = library
    monkeypatch.setattr(bundles, "MAX_MEMBER_BYTES", 100)
    read = []
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *a, **k: read.append(a) or pytest.fail("read"))
    with pytest.raises(DogeError, match="over the 0 MiB limit for one member"):
        import_bundle(registry, path)
    assert read == [] and snapshot(registry) == ([], [])


def test_an_oversize_total_is_refused(library, registry, monkeypatch):
    _, path = library
    monkeypatch.setattr(bundles, "MAX_TOTAL_BYTES", 1000)
    with pytest.raises(DogeError, match="unpacks to .* bytes, over the"):
        import_bundle(registry, path)


def declare_size(path, out, member, size):
    """Copy the bundle at ``path`` to ``out`` with ``member``'s size in the central directory set to ``size``."""
    data = bytearray(path.read_bytes())
    start = data.find(b"PK\x01\x02")
    while data[start + 46 : start + 46 + len(member)] != member.encode():
        start = data.find(b"PK\x01\x02", start + 1)
    data[start + 24 : start + 28] = size.to_bytes(4, "little")  # uncompressed size
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("delta", [-10, 10])
def test_a_member_whose_bytes_differ_from_its_declared_size_is_refused(library, registry, tmp_path, delta):
    _, path = library
    with zipfile.ZipFile(path) as zf:
        size = zf.getinfo(MANIFEST).file_size
    lying = declare_size(path, tmp_path / "lying.doge", MANIFEST, size + delta)
    with pytest.raises(DogeError, match="damaged|declares") as e:
        import_bundle(registry, lying)
    assert "\n" not in str(e.value)
    assert snapshot(registry) == ([], [])


@pytest.mark.parametrize(
    "change, says",
    [
        (lambda m: m.update(format="doge-bundle/2"), "'doge-bundle/2' is not 'doge-bundle/1'.*upgrade doge"),
        (lambda m: m.update(format="tarball"), "unknown bundle format 'tarball'"),
        (lambda m: m.pop("format"), "unknown bundle format None"),
        (lambda m: m["entries"][0].update(name="Bad Name"), "entry 1 of doge-bundle.json: invalid gap name"),
        (lambda m: m["entries"][0].update(version="2"), "'version' must be a int"),
        (lambda m: m["entries"][0].update(dim=99), "says dim 99 but its blob holds 4"),
        (lambda m: m["entries"][0].update(aliases=["v2"]), "reserved for versions"),
        (lambda m: m.update(entries=m["entries"] + m["entries"][:1]), "listed twice"),
    ],
)
def test_bad_manifests_are_refused_in_one_line(library, registry, tmp_path, change, says):
    _, path = library
    bad = rewrite(path, tmp_path / "bad.doge", lambda m, members: change(m) and None)
    with pytest.raises(DogeError, match=says) as e:
        import_bundle(registry, bad)
    assert "\n" not in str(e.value)
    assert snapshot(registry) == ([], [])


def test_a_blob_that_is_not_a_gap_file_is_refused(library, registry, tmp_path):
    import hashlib
    import pickle

    _, path = library
    payload = pickle.dumps({"gap": [1.0, 2.0]})
    sha = hashlib.sha256(payload).hexdigest()

    def swap(manifest, members):
        old = manifest["entries"][0]
        members.pop(old["member"])
        old.update(sha256=sha, member=f"blobs/{sha}.safetensors")
        members[old["member"]] = payload

    with pytest.raises(DogeError, match="a Python pickle, not safetensors"):
        import_bundle(registry, rewrite(path, tmp_path / "pickle.doge", swap))
    assert snapshot(registry) == ([], [])


def test_a_file_that_is_not_a_bundle_is_named(registry, tmp_path):
    junk = tmp_path / "junk.doge"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(DogeError, match="junk.doge is damaged or not a doge bundle"):
        import_bundle(registry, junk)
    empty_zip = tmp_path / "empty.doge"
    with zipfile.ZipFile(empty_zip, "w"):
        pass
    with pytest.raises(DogeError, match="has no doge-bundle.json"):
        import_bundle(registry, empty_zip)


# -- the command line ----------------------------------------------------------------------


def test_cli_export_bundle_then_import_it_elsewhere(tmp_path):
    ana, bob = tmp_path / "ana", tmp_path / "bob"
    reg = Registry(home=ana)
    reg.create(NAME, vec(0), {"seed": 0})
    reg.create(NAME, vec(1), {"seed": 1})
    reg.tag(NAME, "prod")
    lib = tmp_path / "lib.doge"

    out = cli(ana, "gap", "export", "--bundle", lib, f"{NAME}@v1", f"{NAME}@prod").output
    assert out.strip() == f"wrote {lib}: 2 gap version(s): {NAME}@v1, {NAME}@v2"
    out = cli(bob, "gap", "import", lib).output.splitlines()
    assert out[0].startswith(f"imported {NAME}@v1 from {lib} (sha256 ")
    assert out[1].endswith("; alias prod set")
    again = json.loads(cli(bob, "gap", "import", lib, "--json").output)
    assert [(e["ref"], e["status"]) for e in again] == [(f"{NAME}@v1", "present"), (f"{NAME}@v2", "present")]
    assert [v["sha256"] for v in json.loads(cli(bob, "gap", "list", "--json").output)] == [
        gv.sha256 for gv in reg.list()
    ]

    # the single-file form still works, and the two forms are not mixed up
    cli(ana, "gap", "export", NAME, tmp_path / "one.safetensors")
    assert "give REF FILE" in cli(ana, "gap", "export", NAME, ok=False).output
    refused = cli(ana, "gap", "export", "--bundle", tmp_path / "lib.zip", NAME, ok=False)
    assert refused.output.strip() == "Error: a bundle is a *.doge file: name it e.g. lib.doge"
    assert "--as renames a single gap file" in cli(bob, "gap", "import", lib, "--as", "x", ok=False).output
