"""Examples that cannot rot: every runnable block of the documentation runs (tests/docs/docs_runner.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from docs_runner import DOCS, runnable_blocks
from helpers import make_gap_home

PAGES = runnable_blocks()


def test_the_runner_finds_the_pages_that_promise_runnable_examples():
    assert {"getting-started.md", "concepts/registry.md", "howto/classification.md"} <= set(PAGES)
    shell, python = (sum(b.language == lang for bs in PAGES.values() for b in bs) for lang in ("shell", "python"))
    assert shell >= 5 and python >= 3


def test_a_misplaced_marker_is_an_error_naming_the_page(tmp_path):
    (tmp_path / "bad.md").write_text("# Bad\n\n<!-- runnable -->\n\nSome text.\n\n```sh\ntrue\n```\n")
    with pytest.raises(ValueError, match=r"docs/bad.md: a <!-- runnable --> marker"):
        runnable_blocks(tmp_path)


def test_a_failing_block_fails(tmp_path):
    """The runner is not a formality: a block that exits non-zero is reported with its output."""
    (tmp_path / "p.md").write_text("# P\n\n<!-- runnable -->\n```sh\necho before\nfalse\necho after\n```\n")
    (block,) = runnable_blocks(tmp_path)["p.md"]
    with pytest.raises(
        AssertionError, match=r"(?s)docs/p.md:4: the runnable shell block failed.*output ---\n\s*before"
    ) as info:
        run_block(block, tmp_path, dict(os.environ))
    assert "after" not in str(info.value).split("--- output ---")[1]


@pytest.fixture
def sandbox(tmp_path, tiny_model):
    def make(mode: str) -> tuple[Path, dict]:
        folder = tmp_path / "sandbox"
        folder.mkdir()
        env = {**os.environ, "DOGE_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        for key in ("DOGE_REGISTRY_URL", "DOGE_BLOB_STORE", "DOGE_MODEL", "DOGE_LOAD_PLUGINS"):
            env.pop(key, None)
        if mode == "sample":
            from doge.sample_data import write_domains

            shutil.copytree(tiny_model, folder / "tiny-model", symlinks=True)
            domains = write_domains(folder / "data", count=24, size=64)
            make_gap_home(tmp_path / "home", folder / "tiny-model", domains)
        return folder, env

    return make


def run_block(block, folder: Path, env: dict) -> None:
    if block.language == "shell":
        argv = ["bash", "-e", "-o", "pipefail", "-c", block.code]
    else:
        argv = [sys.executable, "-c", block.code]
    proc = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise AssertionError(
            f"docs/{block.page}:{block.line}: the runnable {block.language} block failed "
            f"(exit {proc.returncode}):\n{block.code}\n--- output ---\n{proc.stdout}{proc.stderr}"
        )


@pytest.mark.slow
@pytest.mark.parametrize("page", sorted(PAGES))
def test_runnable_examples_run(page, sandbox):
    blocks = PAGES[page]
    folder, env = sandbox(blocks[0].mode)
    for block in blocks:
        run_block(block, folder, env)


def test_pages_point_at_files_of_the_repository():
    """A literalinclude or figure names a file that exists (Sphinx checks too, but only when built)."""
    import re

    for path in DOCS.rglob("*.md"):
        for target in re.findall(r"```\{(?:literalinclude|figure)\}\s+(\S+)", path.read_text()):
            assert (path.parent / target).resolve().is_file(), f"{path.relative_to(DOCS)}: {target} is missing"
