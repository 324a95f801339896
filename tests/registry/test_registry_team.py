"""The team registry: schema migrations, labels, history, S3 blob stores, read-only roles, many writers.

Every test that takes ``registry_url`` runs on SQLite and on PostgreSQL (its own schema); the S3
tests talk to moto's S3 server on loopback through s3fs.
"""

import json
import logging
import uuid

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import postgres_schema, postgres_url, race
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from doge.cli.main import get_cli
from doge.errors import DogeError, IntegrityError, NotFound
from doge.registry import ReadOnlyRegistry, Registry, registry_info, schema, upgrade_registry
from doge.registry.models import Base

NAME = "real->painting"


def vec(seed: int, dim: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


def db_url(home, registry_url) -> str:
    """The URL a Registry in ``home`` opens when ``registry_url`` is None (the SQLite default)."""
    return registry_url or f"sqlite:///{home / 'registry.db'}"


def cli(home, registry_url, *args, blobs=None):
    argv = ["--home", str(home), "--quiet"]
    if registry_url:
        argv += ["--registry", registry_url]
    if blobs:
        argv += ["--blobs", blobs]
    return CliRunner().invoke(get_cli(), [*argv, *map(str, args)])


def ok(result):
    assert result.exit_code == 0, result.output
    return result.output


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def state(url: str) -> dict:
    """Everything in the database: each table's rows, and the schema revision."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = sorted(inspect(conn).get_table_names())
            return {t: sorted(map(tuple, conn.execute(text(f"SELECT * FROM {t}")))) for t in tables}
    finally:
        engine.dispose()


# -- schema revisions ----------------------------------------------------------------------


def test_the_migrations_build_exactly_the_schema_of_the_models(home, registry_url):
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    home.mkdir()
    engine = create_engine(db_url(home, registry_url))
    try:
        with engine.begin() as conn:
            command.upgrade(schema.alembic_config(conn), "head")
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
            assert schema.current_revision(conn) == schema.head_revision()
    finally:
        engine.dispose()


def test_a_new_registry_is_created_at_the_newest_revision(home, registry_url):
    Registry(home=home, url=registry_url).create(NAME, vec(0), {})
    info = registry_info(home, registry_url)
    assert info["schema_revision"] == schema.head_revision() and info["up_to_date"]
    assert info["counts"] == {"names": 1, "versions": 1, "blobs": 1, "aliases": 0, "labels": 0, "history": 1}
    assert info["blob_store"] == str(home.resolve() / "blobs")
    assert schema.known_revisions()[:2] == ["0001_initial", "0002_labels_audit"]
    assert schema.known_revisions()[-1] == schema.head_revision() == schema._scripts().get_current_head()


def _make_old(home, registry_url, pre_alembic: bool):
    """A registry as doge 0.1 left it (revision 0001_initial), holding a gap with an alias."""
    from alembic import command

    reg = Registry(home=home, url=registry_url)
    gv = reg.create(NAME, vec(0), {"seed": 1}, description="kept")
    reg.tag(gv.ref, "prod")
    reg.close()
    engine = create_engine(db_url(home, registry_url))
    with engine.begin() as conn:
        command.downgrade(schema.alembic_config(conn), schema.FIRST)
        if pre_alembic:  # doge 0.1 made its tables without recording a revision
            conn.execute(text(f"DROP TABLE {schema.VERSION_TABLE}"))
    engine.dispose()
    return gv


@pytest.mark.parametrize("pre_alembic", [False, True], ids=["at-0001", "before-alembic"])
def test_an_old_registry_is_refused_untouched_then_upgraded_with_its_gaps(home, registry_url, pre_alembic):
    gv = _make_old(home, registry_url, pre_alembic)
    url = db_url(home, registry_url)
    before = state(url)
    assert "gap_labels" not in before and ("alembic_version" in before) != pre_alembic

    with pytest.raises(DogeError) as err:
        Registry(home=home, url=registry_url)
    assert "0001_initial" in str(err.value) and "doge registry upgrade" in str(err.value)
    assert "nothing was changed" in str(err.value)
    assert "upgrade" in one_line_error(cli(home, registry_url, "gap", "list"))
    assert state(url) == before  # refusing wrote nothing

    info = json.loads(ok(cli(home, registry_url, "registry", "info", "--json")))
    assert info["schema_revision"] == "0001_initial" and not info["up_to_date"]
    assert info["counts"] == {"names": 1, "versions": 1, "blobs": 1, "aliases": 1}

    out = ok(cli(home, registry_url, "registry", "upgrade"))
    assert f"from schema revision 0001_initial to {schema.head_revision()}" in out
    assert "already at" in ok(cli(home, registry_url, "registry", "upgrade"))

    reg = Registry(home=home, url=registry_url)
    got = reg.resolve(f"{NAME}@prod")
    assert (got.ref, got.sha256, got.description, got.provenance) == (gv.ref, gv.sha256, "kept", {"seed": 1})
    np.testing.assert_array_equal(reg.load_vector(got), vec(0))
    assert reg.label(got.ref, {"team": "vision"}).labels == {"team": "vision"}
    assert reg.create(NAME, vec(1), {}).version == 2
    assert [e["action"] for e in reg.history(NAME)] == ["label-set", "version-created"]


def test_a_registry_from_a_newer_doge_is_refused_and_not_downgraded(home, registry_url):
    Registry(home=home, url=registry_url).create(NAME, vec(0), {})
    url = db_url(home, registry_url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099_future'"))
    engine.dispose()
    before = state(url)
    for attempt in (lambda: Registry(home=home, url=registry_url), lambda: upgrade_registry(home, registry_url)):
        with pytest.raises(DogeError, match="0099_future.*newer doge.*upgrade doge"):
            attempt()
    assert state(url) == before


def test_upgrade_of_an_empty_database_creates_the_registry(home, registry_url):
    result = upgrade_registry(home, registry_url)
    assert result["before"] is None and result["after"] == schema.head_revision()
    assert registry_info(home, registry_url)["counts"]["versions"] == 0


# -- labels --------------------------------------------------------------------------------


def test_labels_are_set_changed_removed_and_shown(registry):
    gv = registry.create(NAME, vec(0), {})
    assert gv.labels == {}
    labelled = registry.label(gv.ref, {"team": "vision", "dataset": "office-31"})
    assert labelled.labels == {"dataset": "office-31", "team": "vision"}
    assert registry.label(NAME, {"team": "nlp"}, remove=["dataset"]).labels == {"team": "nlp"}
    assert registry.resolve(gv.ref).labels == {"team": "nlp"}
    assert registry.list()[0].labels == {"team": "nlp"}
    assert registry.resolve(gv.ref).to_json()["labels"] == {"team": "nlp"}
    with pytest.raises(NotFound, match="has no label 'dataset'.*team"):
        registry.label(gv.ref, remove=["dataset"])


@pytest.mark.parametrize(
    "values, remove, says",
    [
        ({"Team": "x"}, (), "invalid label key"),
        ({"team": ""}, (), "empty value"),
        ({"team": "a\nb"}, (), "one line"),
        ({"team": "x"}, ["team"], "both set and removed"),
        ({}, (), "give labels"),
    ],
)
def test_bad_labels_are_refused_and_change_nothing(registry, values, remove, says):
    gv = registry.create(NAME, vec(0), {})
    registry.label(gv.ref, {"keep": "me"})
    with pytest.raises(DogeError, match=says):
        registry.label(gv.ref, values, remove=remove)
    assert registry.resolve(gv.ref).labels == {"keep": "me"}
    assert len(registry.history(NAME)) == 2


def test_where_and_search_find_versions_by_labels_name_and_description(registry):
    a1 = registry.create(NAME, vec(0), {}, description="Oil PAINTINGS from the museum")
    a2 = registry.create(NAME, vec(1), {})
    b1 = registry.create("day->night", vec(2), {}, description="street scenes 100%_dark")
    registry.label(a1.ref, {"team": "vision", "dataset": "office"})
    registry.label(a2.ref, {"team": "vision", "dataset": "coco"})
    registry.label(b1.ref, {"team": "robotics", "stage": "Experimental"})

    def refs(**kw):
        return [gv.ref for gv in registry.list(**kw)]

    assert refs(where={"team": "vision"}) == [a1.ref, a2.ref]
    assert refs(where={"team": "vision", "dataset": "coco"}) == [a2.ref]
    assert refs(where={"team": "vision", "stage": "experimental"}) == []
    assert refs(search="PAINTING") == [a1.ref, a2.ref]  # in the name, any case
    assert refs(search="paintings") == [a1.ref]  # only in a description
    assert refs(search="MUSEUM") == [a1.ref]
    assert refs(search="experiment") == [b1.ref]  # a label's value
    assert refs(search="stag") == [b1.ref]  # a label's key
    assert refs(search="100%_") == [b1.ref] and refs(search="1%") == []  # % and _ are literal
    assert refs(name=NAME, search="office") == [a1.ref]
    assert refs(where={"team": "vision"}, search="coco") == [a2.ref]
    assert registry.list(search="nothing like it") == []


# -- history -------------------------------------------------------------------------------


def test_history_records_who_changed_what_and_outlives_removal(registry):
    from doge.registry.audit import who

    v1 = registry.create(NAME, vec(0), {})
    v2 = registry.create(NAME, vec(1), {})
    registry.tag(v1.ref, "prod")
    registry.tag(v2.ref, "prod")
    registry.tag(v2.ref, "prod")  # no change, no entry
    registry.label(v2.ref, {"team": "vision"})
    registry.label(v2.ref, {"team": "nlp"})
    registry.label(v2.ref, {"team": "nlp"})  # no change, no entry
    registry.untag(NAME, "prod")
    registry.tag(v2.ref, "prod")
    registry.remove(v2.ref)
    registry.remove(v1.ref)

    log = registry.history(NAME)
    got = [(e["action"], e["version"], e["before"], e["after"]) for e in log]
    assert got == [
        ("version-created", 1, None, {"version": 1, "sha256": v1.sha256, "source": "created"}),
        ("version-created", 2, None, {"version": 2, "sha256": v2.sha256, "source": "created"}),
        ("alias-set", 1, None, {"alias": "prod", "version": 1}),
        ("alias-moved", 2, {"alias": "prod", "version": 1}, {"alias": "prod", "version": 2}),
        ("label-set", 2, None, {"key": "team", "value": "vision"}),
        ("label-set", 2, {"key": "team", "value": "vision"}, {"key": "team", "value": "nlp"}),
        ("alias-removed", 2, {"alias": "prod", "version": 2}, None),
        ("alias-set", 2, None, {"alias": "prod", "version": 2}),
        ("alias-removed", 2, {"alias": "prod", "version": 2}, None),
        (
            "version-removed",
            2,
            {"version": 2, "sha256": v2.sha256, "aliases": ["prod"], "labels": {"team": "nlp"}},
            None,
        ),
        ("version-removed", 1, {"version": 1, "sha256": v1.sha256, "aliases": [], "labels": {}}, None),
    ]
    assert all(e["who"] == who() and e["at"].endswith("Z") for e in log)
    assert [e["id"] for e in log] == sorted(e["id"] for e in log)
    assert registry.create(NAME, vec(2), {}).version == 3  # a removed number is never reused
    assert len(registry.history(NAME)) == len(log) + 1
    with pytest.raises(NotFound, match="did you mean 'real->painting'"):
        registry.history("real->paintng")


def test_removing_a_version_logs_each_of_its_aliases_removed(home, registry_url):
    reg = Registry(home=home, url=registry_url)
    v1, v2 = reg.create(NAME, vec(0), {}), reg.create(NAME, vec(1), {})
    reg.tag(v1.ref, "prod")
    reg.tag(v1.ref, "stable")
    reg.tag(v2.ref, "latest-good")
    ok(cli(home, registry_url, "gap", "rm", v1.ref))
    log = reg.history(NAME)
    removed = [(e["action"], e["before"]) for e in log[-3:]]
    assert removed[:2] == [
        ("alias-removed", {"alias": "prod", "version": 1}),
        ("alias-removed", {"alias": "stable", "version": 1}),
    ]
    assert removed[2][0] == "version-removed"
    # the aliases a reader of `gap history` would still believe in: those set and not removed
    live: dict[str, int] = {}
    for e in log:
        if e["action"] in ("alias-set", "alias-moved"):
            live[e["after"]["alias"]] = e["after"]["version"]
        elif e["action"] == "alias-removed":
            live.pop(e["before"]["alias"])
    assert live == {"latest-good": 2} == {a: reg.resolve(f"{NAME}@{a}").version for a in live}
    table = ok(cli(home, registry_url, "gap", "history", NAME))
    assert table.count("alias-removed") == 2


def test_gap_rm_succeeds_with_a_warning_when_the_blob_store_cannot_delete(home, registry_url, monkeypatch, caplog):
    from fsspec.implementations.memory import MemoryFileSystem

    blobs = f"memory://doge-{uuid.uuid4().hex[:8]}"
    reg = Registry(home=home, url=registry_url, blob_store=blobs)
    gv = reg.create(NAME, vec(0), {})
    keep = reg.create("day->night", vec(1), {})

    def down(self, path):
        raise ConnectionError("blob store unreachable")

    monkeypatch.setattr(MemoryFileSystem, "rm_file", down)
    out = ok(cli(home, registry_url, "gap", "rm", gv.ref, blobs=blobs))
    assert out.splitlines()[0] == f"removed {gv.ref}"
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and gv.ref in warned[0] and "doge registry gc" in warned[0], warned
    assert "blob store unreachable" in warned[0]
    assert [e["action"] for e in reg.history(NAME)][-1] == "version-removed"
    assert "removed" in one_line_error(cli(home, registry_url, "gap", "rm", gv.ref, blobs=blobs))  # gone, as said
    with pytest.raises(NotFound):
        reg.resolve(gv.ref)
    assert reg.blobs.exists(gv.sha256)  # left for gc, and nothing else lost
    np.testing.assert_array_equal(reg.load_vector(keep), vec(1))
    monkeypatch.undo()
    ok(cli(home, registry_url, "gap", "rm", keep.ref, blobs=blobs))
    assert not reg.blobs.exists(keep.sha256)


def test_a_failed_change_leaves_no_history(registry):
    gv = registry.create(NAME, vec(0), {})
    with pytest.raises(NotFound):
        registry.label(gv.ref, {"team": "vision"}, remove=["missing"])
    assert [e["action"] for e in registry.history(NAME)] == ["version-created"]


# -- the CLI -------------------------------------------------------------------------------


def test_label_list_where_search_and_history_through_the_cli(home, registry_url):
    reg = Registry(home=home, url=registry_url)
    reg.create(NAME, vec(0), {}, description="oil paintings")
    reg.create("day->night", vec(1), {})

    assert ok(cli(home, registry_url, "gap", "label", NAME, "team=vision", "dataset=office")) == (
        f"{NAME}@v1 labels: dataset=office, team=vision\n"
    )
    ok(cli(home, registry_url, "gap", "label", NAME, "--rm", "dataset"))
    ok(cli(home, registry_url, "gap", "tag", NAME, "prod"))
    listed = json.loads(ok(cli(home, registry_url, "gap", "list", "--where", "team=vision", "--json")))
    assert [(v["ref"], v["labels"], v["aliases"]) for v in listed] == [(f"{NAME}@v1", {"team": "vision"}, ["prod"])]
    assert "team=vision" in ok(cli(home, registry_url, "gap", "list"))
    assert "team=vision" in ok(cli(home, registry_url, "gap", "show", NAME))
    found = json.loads(ok(cli(home, registry_url, "gap", "list", "--search", "OIL", "--json")))
    assert [v["ref"] for v in found] == [f"{NAME}@v1"]
    assert "no gap versions match" in ok(cli(home, registry_url, "gap", "list", "--where", "team=x"))

    history = json.loads(ok(cli(home, registry_url, "gap", "history", NAME, "--json")))
    assert [e["action"] for e in history] == ["version-created", "label-set", "label-set", "label-removed", "alias-set"]
    assert set(history[0]) == {"id", "name", "version", "action", "before", "after", "who", "at"}
    table = ok(cli(home, registry_url, "gap", "history", NAME))
    assert "alias-set" in table and "prod->v1" in table and "dataset=office" in table
    ok(cli(home, registry_url, "gap", "untag", NAME, "prod"))
    assert json.loads(ok(cli(home, registry_url, "gap", "history", NAME, "--json")))[-1]["action"] == "alias-removed"

    assert "invalid label key" in one_line_error(cli(home, registry_url, "gap", "label", NAME, "Team=x"))
    assert "no '='" in one_line_error(cli(home, registry_url, "gap", "list", "--where", "team"))
    assert "no gap named" in one_line_error(cli(home, registry_url, "gap", "history", "nope"))


def test_registry_info_hides_the_password_and_counts(home, registry_url):
    Registry(home=home, url=registry_url).create(NAME, vec(0), {})
    info = json.loads(ok(cli(home, registry_url, "registry", "info", "--json")))
    assert set(info) == {"url", "backend", "schema_revision", "head_revision", "up_to_date", "blob_store", "counts"}
    assert info["backend"] == ("postgresql" if registry_url else "sqlite")
    assert info["counts"]["versions"] == 1
    text_out = ok(cli(home, registry_url, "registry", "info"))
    assert f"schema revision: {schema.head_revision()}" in text_out and "versions 1" in text_out


def test_registry_info_never_shows_a_password(home):
    url = "postgresql+psycopg://doge:s3cret@127.0.0.1:1/none"
    line = one_line_error(cli(home, url, "registry", "info"))
    assert "s3cret" not in line and "***" in line


# -- blob stores on S3 ---------------------------------------------------------------------


def _keys(client, bucket) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_gaps_live_in_an_s3_blob_store(home, registry_url, s3, tmp_path):
    url, client, bucket = s3
    reg = Registry(home=home, url=registry_url, blob_store=url)
    gv = reg.create(NAME, vec(0, dim=32), {"seed": 1})
    key = f"team/gaps/{gv.sha256[:2]}/{gv.sha256}.safetensors"
    assert _keys(client, bucket) == [key]
    assert not (home / "blobs").exists()

    other = Registry(home=tmp_path / "elsewhere", url=registry_url, blob_store=url)
    if registry_url:  # a teammate on the shared database reads what was stored
        np.testing.assert_array_equal(other.load_vector(NAME), vec(0, dim=32))
    reg.export(NAME, tmp_path / "g.safetensors")
    assert reg.import_file(tmp_path / "g.safetensors", as_name="copy").sha256 == gv.sha256
    reg.remove(gv.ref)
    assert _keys(client, bucket) == [key]  # "copy" still uses it
    reg.remove("copy")
    assert _keys(client, bucket) == []


def test_an_s3_blob_that_was_tampered_with_or_lost_is_refused(home, registry_url, s3):
    url, client, bucket = s3
    reg = Registry(home=home, url=registry_url, blob_store=url)
    gv = reg.create(NAME, vec(0), {})
    key = f"team/gaps/{gv.sha256[:2]}/{gv.sha256}.safetensors"
    data = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    data[-1] ^= 1
    client.put_object(Bucket=bucket, Key=key, Body=bytes(data))
    with pytest.raises(IntegrityError) as err:
        reg.load_vector(NAME)
    assert f"{url}/{gv.sha256[:2]}/{gv.sha256}.safetensors" in str(err.value) and "corrupted" in str(err.value)

    client.delete_object(Bucket=bucket, Key=key)
    with pytest.raises(IntegrityError, match="missing"):
        reg.load_vector(NAME)
    assert reg.remove(gv.ref) == gv  # as the message advises
    assert reg.create(NAME, vec(0), {}).version == 2


def test_an_s3_store_that_cannot_be_written_is_one_line_and_stores_nothing(home, registry_url, s3_endpoint):
    reg = Registry(home=home, url=registry_url, blob_store="s3://no-such-bucket-here/gaps")
    with pytest.raises(DogeError) as err:
        reg.create(NAME, vec(0), {})
    assert "s3://no-such-bucket-here/gaps" in str(err.value) and "\n" not in str(err.value)
    assert reg.list() == []
    assert Registry(home=home, url=registry_url).create(NAME, vec(0), {}).version == 1  # no version used up


def test_the_cli_takes_the_blob_store_from_blobs_or_the_environment(home, registry_url, s3, monkeypatch, tmp_path):
    from safetensors.numpy import save_file

    url, client, bucket = s3
    Registry(home=home, url=registry_url).create("local->gap", vec(5), {})  # its blob stays in home/blobs
    plain = tmp_path / "plain.safetensors"
    save_file({"gap": vec(6)}, str(plain))
    ok(cli(home, registry_url, "gap", "import", plain, "--as", "a->b", blobs=url))
    assert len(_keys(client, bucket)) == 1
    monkeypatch.setenv("DOGE_BLOB_STORE", url)
    diff = json.loads(ok(cli(home, registry_url, "gap", "diff", "a->b", "a->b", "--json")))
    assert diff["cosine"] == pytest.approx(1.0)
    assert json.loads(ok(cli(home, registry_url, "registry", "info", "--json")))["blob_store"] == url
    assert "missing" in one_line_error(cli(home, registry_url, "gap", "diff", "a->b", "local->gap"))


def test_other_fsspec_stores_work_too(home):
    reg = Registry(home=home, blob_store=f"memory://doge-{uuid.uuid4().hex[:8]}")
    gv = reg.create(NAME, vec(3), {})
    np.testing.assert_array_equal(reg.load_vector(gv), vec(3))
    assert reg.blobs.where(gv.sha256).startswith("memory://")
    local = Registry(home=home, blob_store=f"file://{home / 'b'}")
    assert local.blobs.root == home / "b"


# -- several processes at once -------------------------------------------------------------

WORKERS = 4  # the eight-writer race on the database alone is test_registry_concurrency's


def _create_labelled(home, url, blobs, i, barrier):
    reg = Registry(home=home, url=url, blob_store=blobs)
    barrier.wait(timeout=60)
    gv = reg.create(NAME, vec(i), {"worker": i})
    reg.label(gv.ref, {"worker": str(i)})
    return gv.version


def test_processes_writing_to_postgres_and_s3_at_once_lose_nothing(home, s3):
    """Writers on one name: distinct consecutive versions, each labelled, each blob on S3."""
    url, client, bucket = s3
    with postgres_schema(postgres_url()) as pg:
        Registry(home=home, url=pg).close()  # the schema exists before the race
        outcomes = race(_create_labelled, [(str(home), pg, url, i) for i in range(WORKERS)])
        assert [err for _, _, err in outcomes if err] == []
        assert sorted(v for _, v, _ in outcomes) == list(range(1, WORKERS + 1))
        reg = Registry(home=home, url=pg, blob_store=url)
        for i, version, _ in outcomes:
            gv = reg.resolve(f"{NAME}@v{version}")
            assert gv.labels == {"worker": str(i)} and gv.provenance == {"worker": i}
            np.testing.assert_array_equal(reg.load_vector(gv), vec(i))
        assert len(_keys(client, bucket)) == WORKERS
        actions = [e["action"] for e in reg.history(NAME)]
        assert actions.count("version-created") == WORKERS and actions.count("label-set") == WORKERS
        reg.close()


# -- a read-only PostgreSQL role -----------------------------------------------------------


def test_a_read_only_role_reads_and_renders_but_every_write_is_one_clear_line(
    home, pg, reader, tmp_path, tiny_model, domains
):
    from doge.api import create_gap, load_gap

    ro_url, grant = reader
    with pytest.raises(ReadOnlyRegistry, match="read-only for this user"):
        Registry(home=home, url=ro_url)  # an empty database it may not create tables in

    owner = Registry(home=home, url=pg)
    gv = create_gap(
        NAME, domains["real"], domains["painting"], model=str(tiny_model), registry=owner, progress=False, workers=0
    ).ref
    owner.tag(gv, "prod")
    owner.label(gv, {"team": "vision"})
    grant()
    before = state(pg)

    ro = Registry(home=home, url=ro_url)
    assert [v.ref for v in ro.list(where={"team": "vision"}, search="paint")] == [gv]
    assert ro.resolve(f"{NAME}@prod").labels == {"team": "vision"}
    assert load_gap(f"{NAME}@prod", registry=ro).vector.shape[0] == 32
    assert len(ro.history(NAME)) == 3
    assert registry_info(home, ro_url)["counts"]["versions"] == 1
    exported = tmp_path / "g.safetensors"
    ro.export(gv, exported)

    writes = {
        "create": lambda: ro.create(NAME, vec(0), {}),
        "create a new name": lambda: ro.create("new->name", vec(0), {}),
        "tag": lambda: ro.tag(gv, "staging"),
        "untag": lambda: ro.untag(NAME, "prod"),
        "label": lambda: ro.label(gv, {"team": "nlp"}),
        "remove": lambda: ro.remove(gv),
        "import": lambda: ro.import_file(exported, as_name="copy"),
    }
    for what, write in writes.items():
        with pytest.raises(ReadOnlyRegistry) as err:
            write()
        message = str(err.value)
        assert "\n" not in message and "read-only for this user" in message and "write access" in message, what
        assert make_url(ro_url).username in message, what
    assert state(pg) == before

    listed = json.loads(ok(cli(home, ro_url, "gap", "list", "--json")))
    assert [v["ref"] for v in listed] == [gv]
    assert gv in ok(cli(home, ro_url, "gap", "show", f"{NAME}@prod"))
    for args in (
        ["gap", "tag", gv, "staging"],
        ["gap", "label", gv, "a=b"],
        ["gap", "rm", gv],
        ["gap", "import", exported, "--as", "copy"],
    ):
        assert "read-only for this user" in one_line_error(cli(home, ro_url, *args)), args
    out = tmp_path / "out"
    ok(
        cli(
            home,
            ro_url,
            "render",
            "--gap",
            f"{NAME}@prod",
            "--src",
            domains["real"],
            "--out",
            out,
            "--model",
            tiny_model,
            "--control",
            "none",
            "--size",
            "64",
            "--steps",
            "2",
            "--limit",
            "1",
        )
    )
    assert len(list((out / "images").iterdir())) == 1
    assert state(pg) == before


def test_a_read_only_role_cannot_upgrade_an_old_registry(home, pg, reader):
    ro_url, grant = reader
    _make_old(home, pg, pre_alembic=False)
    grant()
    before = state(pg)
    with pytest.raises(DogeError, match="doge registry upgrade"):
        Registry(home=home, url=ro_url)
    assert "read-only for this user" in one_line_error(cli(home, ro_url, "registry", "upgrade"))
    assert state(pg) == before
