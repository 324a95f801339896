"""Faults a hostile or unlucky user meets: each gets one line naming the fix, and nothing leaks."""

import errno
import json
import os
import struct
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from doge.atomic import WriteError, write_atomic
from doge.cli.main import get_cli
from doge.errors import DogeError
from doge.names import parse_ref, validate_name
from doge.registry import Registry
from doge.registry.bundles import MANIFEST, import_bundle, write_bundle
from doge.urls import hide_password

NAME = "real->painting"


def vec(seed: int, dim: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


def blob_files(home) -> list[str]:
    root = home / "blobs"
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


def doge(*args, env=None):
    return CliRunner().invoke(get_cli(), [str(a) for a in args], env=env)


def one_line_error(result, *words):
    """The command failed with one 'Error:' line holding ``words``, and no traceback."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def safetensors_bytes(metadata: dict, dim: int = 4) -> bytes:
    header = {"gap": {"dtype": "F32", "shape": [dim], "data_offsets": [0, 4 * dim]}, "__metadata__": metadata}
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + np.ones(dim, np.float32).tobytes()


# -- 1. write errors -----------------------------------------------------------------------


def test_export_under_a_file_is_one_line_naming_the_path(tmp_path):
    home = tmp_path / "home"
    Registry(home=home).create(NAME, vec(0), {})
    (tmp_path / "afile").write_text("x")
    result = doge("--home", home, "gap", "export", NAME, tmp_path / "afile" / "g.safetensors")
    one_line_error(result, str(tmp_path / "afile"), "file stands where a folder is needed")


@pytest.mark.parametrize(
    "code, says", [(errno.ENOSPC, "free some space"), (errno.EROFS, "read-only"), (errno.EACCES, "read-only")]
)
def test_a_full_disk_or_read_only_place_is_one_line_and_leaves_no_file(tmp_path, monkeypatch, code, says):
    home = tmp_path / "home"
    Registry(home=home).create(NAME, vec(0), {})

    def failing_fsync(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr("doge.atomic.os.fsync", failing_fsync)
    dest = tmp_path / "out" / "g.safetensors"
    one_line_error(doge("--home", home, "gap", "export", NAME, dest), str(dest), says)
    assert list((tmp_path / "out").iterdir()) == []  # no half-written file, no temp file
    # creating on a full disk: the same line, no version, no blob
    one_line_error(doge("--home", home, "remote", "add", "team", tmp_path / "team"), "remotes", says)
    before = blob_files(home)
    with pytest.raises(WriteError, match=says):
        Registry(home=home).create(NAME, vec(1), {})
    monkeypatch.undo()
    assert [v.ref for v in Registry(home=home).list()] == [f"{NAME}@v1"]
    assert blob_files(home) == before


def test_write_atomic_leaves_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    write_atomic(path, b"old")
    monkeypatch.setattr("doge.atomic.os.replace", lambda *a: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    with pytest.raises(WriteError, match=str(path)):
        write_atomic(path, b"new")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]


# -- 2. deeply nested JSON -----------------------------------------------------------------


def test_deeply_nested_provenance_in_a_gap_file_is_refused_in_one_line(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    path = tmp_path / "deep.safetensors"
    path.write_bytes(safetensors_bytes({"doge.name": "deep", "doge.provenance": deep}))
    home = tmp_path / "home"
    one_line_error(doge("--home", home, "gap", "import", path), str(path), "not a JSON object")
    assert blob_files(home) == []


def test_deeply_nested_bundle_manifest_is_refused_in_one_line(tmp_path):
    path = tmp_path / "deep.doge"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(MANIFEST, "{" + '"a":{' * 100_000 + "}" * 100_001)
    with pytest.raises(DogeError, match="not valid JSON"):
        import_bundle(Registry(home=tmp_path / "home"), path)


# -- 3. huge version numbers ---------------------------------------------------------------


@pytest.mark.parametrize("verb", [["gap", "show"], ["gap", "rm"], ["gap", "tag"]])
def test_huge_version_numbers_are_one_line(registry, home, registry_url, verb):
    registry.create(NAME, vec(0), {})
    args = [*verb, f"{NAME}@v99999999999999999999"] + (["prod"] if verb[1] == "tag" else [])
    options = ["--home", home] + (["--registry", registry_url] if registry_url else [])
    one_line_error(doge(*options, *args), "no version is that high")
    assert registry.resolve(NAME).version == 1


def test_huge_versions_from_python_are_not_found_not_an_overflow(registry):
    from doge.names import Ref

    registry.create(NAME, vec(0), {})
    for version in (0, -1, 2**31, 10**20):
        with pytest.raises(DogeError, match="versions run from v1"):
            registry.resolve(Ref(NAME, version=version))


def test_v0_never_existed_so_it_is_not_called_removed():
    with pytest.raises(DogeError, match="versions start at v1"):
        parse_ref("x@v0")


# -- 4. passwords in the query string ------------------------------------------------------


@pytest.mark.parametrize(
    "url, secret",
    [
        ("postgresql+psycopg://u@db.example/gaps?password=S3cret", "S3cret"),
        ("postgresql://u:pw1@db.example:5432/gaps?sslmode=require&sslpassword=S3cret", "S3cret"),
        ("s3://bucket/gaps?token=S3cret&region=eu", "S3cret"),
        ("postgresql://db.example/gaps?secret_key=S3cret", "S3cret"),
    ],
)
def test_secrets_in_the_query_string_are_hidden(url, secret):
    shown = hide_password(url)
    assert secret not in shown and "pw1" not in shown and "***" in shown
    assert shown.split("?")[0].split("@")[-1] == url.split("?")[0].split("@")[-1]  # the host stays readable


def test_plain_urls_keep_their_spelling():
    for url in ["sqlite:////tmp/x.db", "sqlite:///rel.db", "postgresql://h/db?sslmode=require", "/plain/path"]:
        assert hide_password(url) == url


def test_remote_add_and_list_never_print_a_query_string_password(tmp_path):
    url = "postgresql+psycopg://u@127.0.0.1:1/gaps?password=S3cret"
    home = tmp_path / "home"
    added = doge("--home", home, "remote", "add", "team", url, "--blobs", tmp_path / "blobs")
    listed = doge("--home", home, "remote", "list")
    assert added.exit_code == 0 and listed.exit_code == 0, added.output + listed.output
    assert "S3cret" not in added.output + listed.output and "password=***" in listed.output


def test_a_pulled_versions_origin_holds_no_query_string_password(tmp_path):
    from doge.registry.transfer import pull

    src = Registry(home=tmp_path / "src")
    src.create(NAME, vec(0), {})
    src.url += "?password=S3cret"  # what the user typed; SQLite ignores nothing we rely on here
    dst = Registry(home=tmp_path / "dst")
    pull(src, [NAME], dst, "team")
    assert "S3cret" not in json.dumps(dst.resolve(NAME).provenance)


# -- 5. a refused import writes nothing ----------------------------------------------------


def test_an_import_refused_for_nan_in_provenance_leaves_no_blob_and_names_the_file(tmp_path):
    path = tmp_path / "nan.safetensors"
    path.write_bytes(safetensors_bytes({"doge.name": "x", "doge.provenance": '{"loss": NaN}'}))
    home = tmp_path / "home"
    Registry(home=home).create(NAME, vec(0), {})
    before = blob_files(home)
    one_line_error(doge("--home", home, "gap", "import", path), str(path), "NaN")
    assert blob_files(home) == before
    assert [v.ref for v in Registry(home=home).list()] == [f"{NAME}@v1"]


def test_a_bundle_with_nan_in_provenance_writes_no_blob(tmp_path):
    source = Registry(home=tmp_path / "source")
    source.create(NAME, vec(0), {"a": 1})
    path = tmp_path / "b.doge"
    write_bundle(source, [NAME], path)
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    members[MANIFEST] = members[MANIFEST].replace(b'"a": 1', b'"a": NaN')
    bad = tmp_path / "bad.doge"
    with zipfile.ZipFile(bad, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    home = tmp_path / "home"
    with pytest.raises(DogeError, match="nothing was stored"):
        import_bundle(Registry(home=home), bad)
    assert blob_files(home) == []


# -- 6. files follow the umask -------------------------------------------------------------


def test_blob_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        reg = Registry(home=tmp_path / "home")
        gv = reg.create(NAME, vec(0), {})
        assert reg.blobs.path(gv.sha256).stat().st_mode & 0o777 == 0o644
        os.umask(0o007)
        write_atomic(tmp_path / "team.bin", b"x")
        assert (tmp_path / "team.bin").stat().st_mode & 0o777 == 0o660
    finally:
        os.umask(old)


# -- 7. messages that said the wrong thing -------------------------------------------------


@pytest.mark.parametrize(
    "name, says, never",
    [
        ("a" * 300, "the limit is 200", "lowercase"),
        ("x'; drop table t; --", "invalid gap name", "redirect"),
        ("x--", "invalid gap name", "redirect"),
        ("real-", "redirect", None),
    ],
)
def test_name_messages_name_the_real_problem(name, says, never):
    with pytest.raises(DogeError) as info:
        validate_name(name)
    assert says in str(info.value) and (never is None or never not in str(info.value))
    assert len(str(info.value)) < 300


def test_import_as_empty_name_is_refused(tmp_path):
    reg = Registry(home=tmp_path / "home")
    reg.create(NAME, vec(0), {})
    reg.export(NAME, tmp_path / "g.safetensors")
    with pytest.raises(DogeError, match="--as needs a name"):
        reg.import_file(tmp_path / "g.safetensors", as_name="")


# -- 8. global options after the command ---------------------------------------------------


def test_global_options_work_after_the_command_too(tmp_path):
    home = tmp_path / "home"
    Registry(home=home).create(NAME, vec(0), {})
    after = doge("gap", "list", "--json", "--home", home, "-q")
    before = doge("--home", home, "-q", "gap", "list", "--json")
    assert after.exit_code == 0, after.output
    assert [v["ref"] for v in json.loads(after.output)] == [f"{NAME}@v1"]
    assert after.output == before.output
    other = tmp_path / "other.db"
    made = doge("--home", home, "registry", "info", "--registry", f"sqlite:///{other}")
    assert made.exit_code == 0 and str(other) in made.output


# -- listing at scale ----------------------------------------------------------------------


def test_list_json_lines_are_exactly_what_gap_versions_say(registry, home, registry_url):
    registry.create(NAME, vec(0), {"note": 'quotes " and \\ and ünïcode ☃', "n": [1, 2.5, None]}, description='a "b"\n')
    registry.create(NAME, vec(1), {})
    registry.create("day->night", vec(2), {"estimator": {"name": "mean"}})
    registry.tag(f"{NAME}@v1", "prod")
    registry.tag(f"{NAME}@v1", "best")
    registry.label(f"{NAME}@v2", {"team": "vision", "note": 'ü "q"'})
    options = ["--home", home] + (["--registry", registry_url] if registry_url else [])
    result = doge(*options, "gap", "list", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [gv.to_json() for gv in registry.list()]
    lines = [row.to_json_text() for row in registry.list_rows()[0]]
    assert [json.loads(line) for line in lines] == [gv.to_json() for gv in registry.list()]
    assert all("\n" not in line for line in lines)  # one version a line


def test_gap_list_shows_what_a_person_reads_and_says_how_many_more(tmp_path, monkeypatch):
    monkeypatch.setattr("doge.cli.gap.LIST_LIMIT", 3)
    home = tmp_path / "home"
    reg = Registry(home=home)
    for i in range(5):
        reg.create("many", vec(i), {})
    table = doge("--home", home, "gap", "list")
    assert [line.split()[0] for line in table.output.splitlines()[1:4]] == ["many@v1", "many@v2", "many@v3"]
    assert "2 more of 5" in table.output.splitlines()[-1] and "--all" in table.output
    assert len(doge("--home", home, "gap", "list", "--all").output.splitlines()) == 6
    assert len(doge("--home", home, "gap", "list", "--limit", "2").output.splitlines()) == 4
    assert len(json.loads(doge("--home", home, "gap", "list", "--json").output)) == 5  # scripts get all
    assert len(json.loads(doge("--home", home, "gap", "list", "--json", "--limit", "4").output)) == 4
    both = doge("--home", home, "gap", "list", "--all", "--limit", "2")
    assert both.exit_code == 2 and "Error: --limit and --all contradict" in both.output
    assert json.loads(doge("--home", home, "gap", "list", "nothing-here", "--json").output) == []
