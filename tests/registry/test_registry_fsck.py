"""`doge registry check` finds every kind of damage; `doge registry gc` removes only what nothing uses,
never a blob whose create is about to commit. On SQLite and PostgreSQL."""

import json
import os
import threading
import time

import numpy as np
from click.testing import CliRunner
from sqlalchemy import text

from doge.cli.main import get_cli
from doge.registry.fsck import CORRUPT, DANGLING_ALIAS, MISSING, WRONG_DIM, check, gc

NAME = "real->painting"


def vec(seed: int, dim: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


def doge(registry, *args):
    options = ["--home", str(registry.home)]
    if not registry.url.startswith("sqlite"):
        options += ["--registry", registry.url]
    return CliRunner().invoke(get_cli(), [*options, *map(str, args)])


def age(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def sql(registry, statement: str, **params) -> None:
    with registry._engine.begin() as conn:
        conn.execute(text(statement), params)


def test_a_sound_registry_checks_clean(registry):
    registry.create(NAME, vec(0), {})
    registry.create(NAME, vec(1), {})
    registry.tag(f"{NAME}@v1", "prod")
    result = doge(registry, "registry", "check", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] and report["versions"] == 2 and report["blobs"] == 2
    assert report["problems"] == [] and report["unreferenced"] == []


def test_check_names_each_damaged_version_and_exits_non_zero(registry):
    missing = registry.create("a", vec(0), {})
    corrupt = registry.create("b", vec(1), {})
    wrong = registry.create("c", vec(2), {})
    fine = registry.create("d", vec(3), {})
    registry.blobs.path(missing.sha256).unlink()
    path = registry.blobs.path(corrupt.sha256)
    path.write_bytes(path.read_bytes()[:-4] + b"\0\0\0\0")
    sql(registry, "UPDATE gap_versions SET dim = 9 WHERE name = 'c'")

    kinds = {p["ref"]: p["kind"] for p in check(registry).problems}
    assert kinds == {"a@v1": MISSING, "b@v1": CORRUPT, "c@v1": WRONG_DIM}
    result = doge(registry, "registry", "check")
    assert result.exit_code == 1
    assert "DAMAGED a@v1" in result.output and str(registry.blobs.path(missing.sha256)) in result.output
    assert "3 problems" in result.output and fine.ref not in result.output
    # gap show says what is wrong with its blob, instead of nothing
    shown = doge(registry, "gap", "show", "b@v1")
    assert shown.exit_code == 1 and "corrupted" in shown.output.splitlines()[-1]
    assert wrong.ref  # the width mismatch is found without loading anything else


def test_check_finds_an_alias_pointing_at_nothing(tmp_path):
    import sqlite3

    from doge.registry import Registry

    registry = Registry(home=tmp_path / "home")
    registry.create(NAME, vec(0), {})
    registry.tag(NAME, "prod")
    with sqlite3.connect(tmp_path / "home" / "registry.db") as conn:  # foreign keys off: what a bad tool does
        conn.execute("UPDATE gap_aliases SET version_id = 999")
    problems = check(registry).problems
    assert [(p["kind"], p["ref"]) for p in problems] == [(DANGLING_ALIAS, f"{NAME}@prod")]
    assert "doge gap tag" in problems[0]["message"]


def test_gc_removes_unreferenced_blobs_and_leftovers_but_keeps_young_and_used_ones(registry):
    kept = registry.create(NAME, vec(0), {})
    gone = registry.create(NAME, vec(1), {})
    orphan_old = registry.blobs.put(b"old orphan: an interrupted push")
    orphan_new = registry.blobs.put(b"young orphan: a create about to commit")
    age(registry.blobs.path(orphan_old), 7200)
    leftover = registry.blobs.path(kept.sha256).parent / f".{kept.sha256}.safetensors.abc.part"
    leftover.write_bytes(b"half")
    age(leftover, 7200)
    sql(registry, "DELETE FROM gap_versions WHERE version = 2")  # a row gone without its blob
    age(registry.blobs.path(gone.sha256), 7200)

    listed = {b["sha256"] for b in check(registry).unreferenced}
    assert listed == {orphan_old, orphan_new, gone.sha256}

    dry = doge(registry, "registry", "gc", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert {b["sha256"] for b in json.loads(dry.output)["removed"]} == {orphan_old, gone.sha256}
    assert registry.blobs.exists(orphan_old) and leftover.exists()  # a dry run removes nothing

    result = doge(registry, "registry", "gc")
    assert result.exit_code == 0, result.output
    assert "removed 2 unreferenced blobs and 1 temp files; kept 1 younger than 60 minutes" in result.output
    assert not registry.blobs.exists(orphan_old) and not registry.blobs.exists(gone.sha256)
    assert registry.blobs.exists(orphan_new) and not leftover.exists()
    np.testing.assert_array_equal(registry.load_vector(kept), vec(0))
    assert check(registry).ok


def test_gc_never_removes_the_blob_of_a_create_that_has_not_committed_yet(registry):
    """gc with no grace at all runs while a create holds its blob but not yet its committed row:
    gc waits on the blob's lock, counts again, and keeps it."""
    from doge.registry import gapfile

    data = gapfile.encode(vec(5), NAME, 1, {})
    started, release, result = threading.Event(), threading.Event(), {}

    def slow_create():
        with registry._tx(write=True) as s:
            sha = registry._put_blob(s, data)  # the blob is written first, under its lock ...
            started.set()
            release.wait(10)
            counter = registry._lock_name(s, NAME)
            from doge.registry.models import GapRow
            from doge.registry.registry import _now

            row = GapRow(name=NAME, version=1, sha256=sha, dim=8, description="",
                         created_at=_now(), created_by="t", source="created", provenance="{}")  # fmt: skip
            registry._insert(s, counter, row)  # ... and its row commits after

    creator = threading.Thread(target=slow_create)
    creator.start()
    assert started.wait(10)
    collector = threading.Thread(target=lambda: result.update(gc(registry, grace_s=0)))
    collector.start()
    time.sleep(0.5)  # gc is now waiting for the creator's lock
    release.set()
    creator.join(10)
    collector.join(30)
    assert result["removed"] == []
    np.testing.assert_array_equal(registry.load_vector(f"{NAME}@v1"), vec(5))


def test_check_and_gc_on_an_s3_blob_store(home, s3):
    from doge.registry import Registry

    url, client, bucket = s3
    registry = Registry(home=home, blob_store=url)
    kept = registry.create(NAME, vec(0), {})
    orphan = registry.blobs.put(b"an interrupted push")
    report = check(registry)
    assert report.ok and [b["sha256"] for b in report.unreferenced] == [orphan]
    assert report.unreferenced[0]["age_s"] is not None  # S3 says when an object was written
    assert gc(registry)["removed"] == []  # too young
    assert [b["sha256"] for b in gc(registry, grace_s=0)["removed"]] == [orphan]
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == [f"team/gaps/{kept.sha256[:2]}/{kept.sha256}.safetensors"]
    np.testing.assert_array_equal(registry.load_vector(kept), vec(0))


def png(colour: tuple[int, int, int]) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_check_and_gc_cover_preview_and_plot_pngs(registry):
    from doge.registry.attachments import PNG_SUFFIX

    gv = registry.create(NAME, vec(0), {})
    kept = registry.add_attachment(gv.ref, png((255, 0, 0)))
    damaged = registry.add_attachment(gv.ref, png((0, 255, 0)))
    path = registry.blobs.path(damaged["sha256"], PNG_SUFFIX)
    path.write_bytes(path.read_bytes()[:-4] + b"\0\0\0\0")
    orphan = registry.blobs.put(png((0, 0, 255)), PNG_SUFFIX)  # a preview whose row never came
    age(registry.blobs.path(orphan, PNG_SUFFIX), 7200)

    report = check(registry)
    assert [(p["kind"], p["ref"]) for p in report.problems] == [(CORRUPT, f"{NAME}@v1 preview {damaged['id']}")]
    assert [b["sha256"] for b in report.unreferenced] == [orphan]

    result = gc(registry)
    assert [b["sha256"] for b in result["removed"]] == [orphan]
    assert not registry.blobs.exists(orphan, PNG_SUFFIX)
    assert registry.blobs.exists(kept["sha256"], PNG_SUFFIX)  # in use: never collected
    assert registry.read_attachment(gv.ref, kept["id"])[1] == png((255, 0, 0))


# -- registry check: a folder where a blob should be ----------------------------------------------


def test_registry_check_reports_a_folder_in_place_of_a_blob_and_checks_the_rest(tmp_path):
    from doge.registry import Registry

    registry = Registry(home=tmp_path / "home")
    try:
        rng = np.random.default_rng(0)
        hit = registry.create("a->b", rng.standard_normal(8).astype(np.float32), {})
        fine = registry.create("c->d", rng.standard_normal(8).astype(np.float32), {})
        path = registry.blobs.path(hit.sha256)
        path.unlink()
        path.mkdir()  # once: 'Error: ...: Is a directory' and the check stopped there
        result = CliRunner().invoke(get_cli(), ["--home", str(tmp_path / "home"), "registry", "check", "--json"])
        assert result.exit_code == 1, result.output
        report = json.loads(result.output)
        assert [(p["ref"], p["kind"]) for p in report["problems"]] == [("a->b@v1", "unreadable-blob")]
        assert str(path) in report["problems"][0]["message"] and report["versions"] == 2
        shown = CliRunner().invoke(get_cli(), ["--home", str(tmp_path / "home"), "gap", "show", fine.ref])
        assert shown.exit_code == 0, shown.output
    finally:
        registry.close()
