"""Version numbers beyond reason are not found (never an overflow), and listing many versions says
what a person reads."""

import json

import pytest
from helpers import doge, one_line_error, vec

from doge.errors import DogeError
from doge.names import parse_ref
from doge.registry import Registry

NAME = "real->painting"


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
