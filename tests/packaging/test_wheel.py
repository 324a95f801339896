"""The wheel holds every package: pyproject.toml lists them by hand (the four top-level folders map
onto ``doge.*``), so a new folder left off that list would install a doge that cannot import it."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# top-level folder -> the package it installs as (pyproject's package-dir)
FOLDERS = {"doge": "doge", "plugins": "doge/plugins", "registry": "doge/registry", "cli": "doge/cli"}


def _python_folders() -> set[str]:
    """Every folder holding Python files, as its path inside the installed package."""
    found = set()
    for folder, installed in FOLDERS.items():
        for py in (ROOT / folder).rglob("*.py"):
            if "__pycache__" in py.parts:
                continue
            found.add(str(Path(installed) / py.parent.relative_to(ROOT / folder)).removesuffix("/."))
    return found


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory) -> set[str]:
    pytest.importorskip("wheel", reason="setuptools < 70.1 builds wheels through the wheel package")
    src = tmp_path_factory.mktemp("src")
    for name in [*FOLDERS, "pyproject.toml", "README.md"]:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    dist = tmp_path_factory.mktemp("dist")
    # the PEP 517 hook that pip and build call, without their isolated environment (no network)
    build = f"from setuptools import build_meta; print(build_meta.build_wheel({str(dist)!r}))"
    done = subprocess.run([sys.executable, "-c", build], cwd=src, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = dist.glob("doge-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


def test_every_python_folder_is_in_the_wheel(wheel_names):
    folders = _python_folders()
    assert {"doge", "doge/plugins/controls", "doge/registry/migrations/versions", "doge/cli"} <= folders
    missing = sorted(f for f in folders if f"{f}/__init__.py" not in wheel_names)
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_every_python_file_is_in_the_wheel(wheel_names):
    for folder, installed in FOLDERS.items():
        for py in (ROOT / folder).rglob("*.py"):
            if "__pycache__" not in py.parts:
                assert str(Path(installed) / py.relative_to(ROOT / folder)) in wheel_names


def test_the_migrations_ship_with_their_template(wheel_names):
    assert "doge/registry/migrations/script.py.mako" in wheel_names
    assert "doge/registry/migrations/env.py" in wheel_names
    versions = sorted(p.name for p in (ROOT / "registry/migrations/versions").glob("0*.py"))
    assert versions, "no migration versions found"
    for name in versions:
        assert f"doge/registry/migrations/versions/{name}" in wheel_names


def test_the_wheel_marks_doge_as_typed(wheel_names):
    # PEP 561: without the marker, mypy ignores doge's hints in a user's project
    assert "doge/py.typed" in wheel_names
