"""Global options work after the command as well as before it."""

import json

from helpers import doge, vec

from doge.registry import Registry

NAME = "real->painting"


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
