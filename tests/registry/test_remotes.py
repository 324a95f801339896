"""Remotes, push and pull: between SQLite homes and against PostgreSQL, through Python and the CLI."""

import json
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import cli

from doge.errors import NotFound
from doge.registry import Registry
from doge.registry.copying import IncomingVersion, VersionConflict, place
from doge.registry.remotes import add_remote, get_remote, load_remotes, open_registry, remove_remote
from doge.registry.transfer import pull, push

# the S3 server and read-only PostgreSQL role of the team-registry tests, reused here

NAME = "real->painting"


def vec(seed: int, dim: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


def listing(registry: Registry) -> list[dict]:
    return [gv.to_json() for gv in registry.list()]


def without_origin(provenance: dict) -> dict:
    return {k: v for k, v in provenance.items() if k != "origin"}


@pytest.fixture
def local(home):
    reg = Registry(home=home)
    yield reg
    reg.close()


@pytest.fixture
def team(home, registry_url, tmp_path):
    """An empty remote called 'team': another doge home (SQLite), or the test PostgreSQL with a blob folder."""
    if registry_url is None:
        add_remote("team", str(tmp_path / "team-home"), home=home)
    else:
        add_remote("team", registry_url, blobs=str(tmp_path / "team-blobs"), home=home)
    reg = open_registry(get_remote("team", home), home, must_exist=False)
    yield reg
    reg.close()


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


# -- remote add / list / remove ------------------------------------------------------------


def test_a_home_folder_remote_is_its_sqlite_file_and_blobs_folder(home, tmp_path):
    remote = add_remote("team", str(tmp_path / "shared"), home=home)
    assert remote.url == f"sqlite:///{tmp_path / 'shared' / 'registry.db'}"
    assert remote.blobs == str(tmp_path / "shared" / "blobs")
    sqlite = add_remote("lab", f"sqlite:///{tmp_path}/lab/gaps.db", home=home)
    assert sqlite.blobs == str(tmp_path / "lab" / "blobs")
    assert list(load_remotes(home)) == ["lab", "team"]


def test_remotes_file_is_private_and_survives_a_reload(home, tmp_path):
    add_remote("team", "postgresql+psycopg://ana:s3cret@db.example/gaps", blobs="s3://bucket/gaps", home=home)
    path = home / "remotes.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it may hold passwords
    assert get_remote("team", home).url == "postgresql+psycopg://ana:s3cret@db.example/gaps"
    assert [p.name for p in home.iterdir()] == ["remotes.json"]  # no temp file left


def test_remote_list_hides_passwords(home):
    cli(
        home,
        "remote",
        "add",
        "team",
        "postgresql+psycopg://ana:s3cret@db.example:5433/gaps",
        "--blobs",
        "s3://bucket/gaps",
    )
    text = cli(home, "remote", "list").output
    assert "s3cret" not in text and "ana:***@db.example:5433/gaps" in text
    listed = json.loads(cli(home, "remote", "list", "--json").output)
    assert listed == [
        {"name": "team", "url": "postgresql+psycopg://ana:***@db.example:5433/gaps", "blobs": "s3://bucket/gaps"}
    ]


@pytest.mark.parametrize(
    "args, says",
    [
        (["Team", "/x"], "invalid remote name"),
        (["team", "postgresql+psycopg://db.example/gaps"], "needs its blob store: add --blobs"),
        (["team", "sqlite://"], "names no database file"),
        (["team", "nonsense://"], "bad remote URL"),
    ],
)
def test_bad_remotes_are_refused_in_one_line(home, args, says):
    assert says in one_line_error(cli(home, "remote", "add", *args, ok=False))
    assert load_remotes(home) == {}


def test_adding_a_name_twice_is_refused_and_remove_forgets(home, tmp_path):
    cli(home, "remote", "add", "team", tmp_path / "a")
    assert "exists" in one_line_error(cli(home, "remote", "add", "team", tmp_path / "b", ok=False))
    assert get_remote("team", home).url.endswith("/a/registry.db")
    cli(home, "remote", "remove", "team")
    assert load_remotes(home) == {}
    with pytest.raises(NotFound, match="there are no remotes yet"):
        remove_remote("team", home)


def test_an_unknown_or_missing_remote_is_named(home, tmp_path):
    add_remote("team", str(tmp_path / "typo"), home=home)
    assert "no remote named 'lab' (known remotes: team)" in one_line_error(
        cli(home, "gap", "list", "--remote", "lab", ok=False)
    )
    # reading a SQLite remote that does not exist creates nothing there
    assert "no registry at" in one_line_error(cli(home, "gap", "list", "--remote", "team", ok=False))
    assert not (tmp_path / "typo").exists()


# -- the rules -----------------------------------------------------------------------------


def incoming(version: int, sha: str) -> IncomingVersion:
    return IncomingVersion(NAME, version, b"", sha, 8, "", None, "", {})


@pytest.mark.parametrize(
    "version, sha, existing, next_version, new_version, placed",
    [
        (2, "b", {1: "a", 2: "b", 3: "b"}, 4, False, (2, True)),  # there at its own number first
        (5, "b", {1: "a", 3: "b"}, 4, False, (3, True)),  # there at another number
        (4, "c", {1: "a"}, 2, False, (4, False)),  # a free number is kept, gaps and all
        (1, "c", {1: "a"}, 2, True, (2, False)),  # taken: the next one, when asked
        (1, "c", {}, 2, True, (2, False)),  # handed out before (removed): the next one, when asked
    ],
)
def test_where_a_copy_goes(version, sha, existing, next_version, new_version, placed):
    assert place(incoming(version, sha), existing, next_version, new_version=new_version, where="x") == placed


@pytest.mark.parametrize("existing, says", [({1: "a"}, "x already has real->painting@v1"), ({}, "x has handed out")])
def test_a_copy_never_changes_what_a_number_means(existing, says):
    with pytest.raises(VersionConflict, match=f"versions are immutable: {says}.*--new-version.*@v2"):
        place(incoming(1, "c"), existing, 2, new_version=False, where="x")


# -- push ----------------------------------------------------------------------------------


def test_push_keeps_sha_version_and_records_the_origin(local, team):
    local.create(NAME, vec(0), {"seed": 0})
    second = local.create(NAME, vec(1), {"seed": 1}, description="second")
    (placed,) = push(local, [second.ref], team, "team")

    assert (placed.status, placed.stored.ref, placed.stored.sha256) == ("added", f"{NAME}@v2", second.sha256)
    copy = team.resolve(f"{NAME}@v2")
    assert (copy.sha256, copy.dim, copy.description, copy.created_at) == (second.sha256, 8, "second", second.created_at)
    assert without_origin(copy.provenance) == {"seed": 1}
    origin = copy.provenance["origin"]
    assert origin["ref"] == f"{NAME}@v2" and origin["registry"] == local.url and origin["pushed_at"].endswith("Z")
    np.testing.assert_array_equal(team.load_vector(copy), vec(1))
    assert team.read_blob(copy) == local.read_blob(second)  # the bytes, so the sha, are the same


def test_pushing_what_is_there_is_a_no_op(local, team):
    gv = local.create(NAME, vec(0), {})
    push(local, [gv.ref], team, "team")
    before = listing(team)
    (again,) = push(local, [gv.ref], team, "team")
    assert again.status == "present" and listing(team) == before


def test_a_different_vector_under_an_existing_version_is_refused(local, team):
    team.create(NAME, vec(7), {"theirs": True})
    mine = local.create(NAME, vec(0), {"mine": True})
    before = listing(team)
    with pytest.raises(
        VersionConflict,
        match=r"versions are immutable: remote 'team' already has real->painting@v1 "
        r"with a different vector .*use --new-version.*@v2",
    ):
        push(local, [mine.ref], team, "team")
    assert listing(team) == before

    (placed,) = push(local, [mine.ref], team, "team", new_version=True)
    assert (placed.status, placed.stored.ref, placed.stored.sha256) == ("added", f"{NAME}@v2", mine.sha256)
    # the same vector is recognised under its new number: no third copy
    assert push(local, [mine.ref], team, "team", new_version=True)[0].status == "present"
    assert push(local, [mine.ref], team, "team")[0].stored.ref == f"{NAME}@v2"
    assert [gv.version for gv in team.list(NAME)] == [1, 2]


def test_a_number_the_remote_handed_out_before_is_not_reused(local, team):
    team.create(NAME, vec(7), {})
    team.remove(f"{NAME}@v1")
    mine = local.create(NAME, vec(0), {})
    with pytest.raises(VersionConflict, match="handed out real->painting@v1 before"):
        push(local, [mine.ref], team, "team")
    assert push(local, [mine.ref], team, "team", new_version=True)[0].stored.ref == f"{NAME}@v2"


def test_push_copies_aliases_only_when_asked(local, team):
    gv = local.create(NAME, vec(0), {})
    local.tag(gv.ref, "prod")
    push(local, [gv.ref], team, "team")
    assert team.resolve(gv.ref).aliases == ()
    push(local, [gv.ref], team, "team", aliases=True)
    assert team.resolve(f"{NAME}@prod").ref == gv.ref


def test_a_push_interrupted_after_the_blob_leaves_no_version(local, team, monkeypatch):
    first = local.create(NAME, vec(0), {})
    second = local.create(NAME, vec(1), {})
    real_put = Registry._put_blob
    calls = []

    def put_then_fail(self, s, data):
        sha = real_put(self, s, data)
        calls.append(sha)
        if len(calls) == 2:  # the second blob is written; its row never will be
            raise RuntimeError("connection lost")
        return sha

    monkeypatch.setattr(Registry, "_put_blob", put_then_fail)
    with pytest.raises(RuntimeError, match="connection lost"):
        push(local, [first.ref, second.ref], team, "team")
    assert team.list() == []  # neither version: one transaction
    assert team.blobs.exists(second.sha256)  # only an orphan blob, which nothing refers to

    monkeypatch.undo()
    placed = push(local, [first.ref, second.ref], team, "team")
    assert [p.status for p in placed] == ["added", "added"]
    assert [gv.sha256 for gv in team.list()] == [first.sha256, second.sha256]


def test_a_push_killed_between_blob_and_row_can_be_pushed_again(local, team, home, tmp_path):
    gv = local.create(NAME, vec(0), {})
    script = tmp_path / "killed_push.py"
    script.write_text(
        textwrap.dedent(f"""
        import os
        from doge.registry import Registry
        from doge.registry.remotes import get_remote, open_registry
        from doge.registry.transfer import push

        real_put = Registry._put_blob
        def put_then_die(self, s, data):
            real_put(self, s, data)
            os._exit(9)  # like a kill: no rollback, no cleanup
        Registry._put_blob = put_then_die
        home = {str(home)!r}
        push(Registry(home=home), [{gv.ref!r}], open_registry(get_remote("team", home), home, must_exist=False), "team")
    """)
    )
    assert subprocess.run([sys.executable, str(script)], timeout=120).returncode == 9
    assert team.list() == [] and team.blobs.exists(gv.sha256)
    assert push(local, [gv.ref], team, "team")[0].status == "added"
    np.testing.assert_array_equal(team.load_vector(gv.ref), vec(0))


PUSHER = """
import sys
from doge.cli.main import main
sys.exit(main(["--home", sys.argv[1], "--quiet", "gap", "push", "real->painting@v1", "real->painting@v2", "team"]))
"""


def test_processes_pushing_the_same_gaps_at_once_store_them_once(local, team, home):
    first, second = local.create(NAME, vec(0), {}), local.create(NAME, vec(1), {})
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PUSHER, str(home)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outputs
    assert [(gv.ref, gv.sha256) for gv in team.list()] == [(first.ref, first.sha256), (second.ref, second.sha256)]
    assert sum(out.count("pushed ") for out in outputs) == 2  # the others found them there


# -- pull ----------------------------------------------------------------------------------


def test_pull_mirrors_push(local, team):
    theirs = team.create(NAME, vec(5), {"by": "bob"})
    team.tag(theirs.ref, "prod")
    (placed,) = pull(team, [f"{NAME}@prod"], local, "team", aliases=True)
    assert (placed.status, placed.stored.ref) == ("added", theirs.ref)

    got = local.resolve(f"{NAME}@prod")
    assert got.sha256 == theirs.sha256 and without_origin(got.provenance) == {"by": "bob"}
    assert got.provenance["origin"]["remote"] == "team" and "pulled_at" in got.provenance["origin"]
    created, alias_set = local.history(NAME)
    assert (created["action"], created["after"]["source"]) == ("version-created", "pulled from team")
    assert (alias_set["action"], alias_set["after"]) == ("alias-set", {"alias": "prod", "version": 1})
    np.testing.assert_array_equal(local.load_vector(got), vec(5))
    assert pull(team, [theirs.ref], local, "team")[0].status == "present"

    team.create(NAME, vec(6), {})
    mine = local.create(NAME, vec(8), {})  # local v2 differs from the remote's v2
    with pytest.raises(VersionConflict, match="this registry already has real->painting@v2"):
        pull(team, [f"{NAME}@v2"], local, "team")
    assert local.resolve(f"{NAME}@v2").sha256 == mine.sha256
    assert pull(team, [f"{NAME}@v2"], local, "team", new_version=True)[0].stored.ref == f"{NAME}@v3"


# -- the command line ----------------------------------------------------------------------


def test_cli_push_list_pull_between_two_homes(tmp_path):
    ana, bob, shared = tmp_path / "ana", tmp_path / "bob", tmp_path / "shared"
    reg = Registry(home=ana)
    reg.create(NAME, vec(0), {"who": "ana"})
    reg.tag(NAME, "prod")
    for user in (ana, bob):
        cli(user, "remote", "add", "team", shared)

    out = cli(ana, "gap", "push", NAME, "team", "--aliases").output
    assert out.startswith(f"pushed {NAME}@v1 to team (sha256 ") and "alias prod set" in out
    assert f"{NAME}@v1 is already on team" in cli(ana, "gap", "push", f"{NAME}@v1", "team").output
    listed = json.loads(cli(bob, "gap", "list", "--remote", "team", "--json").output)
    assert [(v["ref"], v["aliases"]) for v in listed] == [(f"{NAME}@v1", ["prod"])]

    pulled = json.loads(cli(bob, "gap", "pull", f"team:{NAME}@prod", "--json").output)
    assert pulled == [
        {"ref": f"{NAME}@v1", "stored_as": f"{NAME}@v1", "status": "added", "sha256": listed[0]["sha256"]}
    ]
    shown = json.loads(cli(bob, "gap", "show", NAME, "--json").output)
    assert shown["sha256"] == listed[0]["sha256"] and shown["provenance"]["who"] == "ana"

    carol = tmp_path / "carol"
    Registry(home=carol).create(NAME, vec(1), {"who": "carol"})
    cli(carol, "remote", "add", "team", shared)
    refused = one_line_error(cli(carol, "gap", "push", NAME, "team", ok=False))
    assert "versions are immutable" in refused and "--new-version" in refused
    out = cli(carol, "gap", "push", NAME, "team", "--new-version").output
    assert out.startswith(f"pushed {NAME}@v1 to team as {NAME}@v2 (sha256 ")
    assert "write REMOTE:REF" in one_line_error(cli(bob, "gap", "pull", NAME, ok=False))


def test_labels_travel_with_a_pushed_version(local, team):
    gv = local.create(NAME, vec(0), {})
    local.label(gv.ref, {"team": "vision", "dataset": "office-31"})
    push(local, [gv.ref], team, "team")
    assert team.resolve(gv.ref).labels == {"dataset": "office-31", "team": "vision"}
    assert [v.ref for v in team.list(where={"team": "vision"})] == [gv.ref]


# -- a read-only role, an S3 blob store ----------------------------------------------------


def test_a_read_only_remote_can_be_pulled_from_but_not_pushed_to(home, local, pg, reader, tmp_path):
    ro_url, grant = reader
    blobs = tmp_path / "team-blobs"
    owner = Registry(home=tmp_path / "owner", url=pg, blob_store=str(blobs))
    owner.create(NAME, vec(0), {"by": "owner"})
    grant()
    cli(home, "remote", "add", "team", ro_url, "--blobs", blobs)

    assert cli(home, "gap", "pull", f"team:{NAME}").output.startswith(f"pulled {NAME}@v1 from team")
    np.testing.assert_array_equal(local.load_vector(NAME), vec(0))

    local.create("mine->theirs", vec(1), {})
    before, blob_files = listing(owner), sorted(blobs.rglob("*"))
    line = one_line_error(cli(home, "gap", "push", "mine->theirs", "team", ok=False))
    assert "read-only for this user" in line and "write access" in line
    assert listing(owner) == before and sorted(blobs.rglob("*")) == blob_files  # refused before any write
    owner.close()


def test_push_and_pull_through_an_s3_blob_store(home, local, registry_url, s3, tmp_path):
    url, client, bucket = s3
    db = registry_url or f"sqlite:///{tmp_path / 'team.db'}"
    add_remote("team", db, blobs=url, home=home)
    gv = local.create(NAME, vec(0), {})
    push(local, [gv.ref], open_registry(get_remote("team", home), home, must_exist=False), "team")
    objects = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert objects == [f"team/gaps/{gv.sha256[:2]}/{gv.sha256}.safetensors"]

    bob = tmp_path / "bob"
    add_remote("team", db, blobs=url, home=bob)
    pulled = json.loads(cli(bob, "gap", "pull", f"team:{NAME}", "--json").output)
    assert pulled[0]["sha256"] == gv.sha256
    np.testing.assert_array_equal(Registry(home=bob).load_vector(NAME), vec(0))
