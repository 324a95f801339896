"""Registry writes that fail or are refused: one line naming the path, no partial file, no blob left
behind; blob files follow the umask."""

import errno
import os
import zipfile

import pytest
from helpers import blob_files, doge, one_line_error, safetensors_bytes, vec

from doge.atomic import WriteError, write_atomic
from doge.errors import DogeError
from doge.registry import Registry
from doge.registry.bundles import MANIFEST, import_bundle, write_bundle

NAME = "real->painting"


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


def test_import_as_empty_name_is_refused(tmp_path):
    reg = Registry(home=tmp_path / "home")
    reg.create(NAME, vec(0), {})
    reg.export(NAME, tmp_path / "g.safetensors")
    with pytest.raises(DogeError, match="--as needs a name"):
        reg.import_file(tmp_path / "g.safetensors", as_name="")
