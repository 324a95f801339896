"""The documentation site: it builds strictly, every command and hook has its page, and its pages
render with their navigation in headless Chromium (Debian's chromium, driven by Playwright)."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CLI_PAGES = DOCS / "reference" / "cli"


def builtin_commands() -> dict[str, click.Command]:
    """doge's own top-level commands (not those a test's plugin may have added to the group)."""
    from doge.cli.main import get_cli

    return {
        name: command
        for name, command in get_cli().commands.items()
        if command.callback is not None and command.callback.__module__.startswith("doge.cli.")
    }


def click_directives(page: Path) -> list[tuple[object, dict[str, str]]]:
    """The objects that a page's ``.. click::`` directives (in ``{eval-rst}`` blocks: sphinx-click
    writes reStructuredText) document, with their options."""
    found = []
    for target, body in re.findall(r"^\.\. click::\s+(\S+)\n((?:[ \t]+:[^\n]*\n)*)", page.read_text(), re.M):
        module, attr = target.split(":")
        options = dict(re.findall(r":(\w+):[ \t]*([^\n]*)", body))
        found.append((getattr(importlib.import_module(module), attr), options))
    return found


def test_every_command_has_a_reference_page_with_its_subcommands():
    commands = builtin_commands()
    assert {"gap", "render", "augment", "serve", "registry", "remote", "filter", "models", "plugins"} <= set(commands)
    missing = []
    for name, command in commands.items():
        page = CLI_PAGES / f"{name}.md"
        documented = click_directives(page) if page.exists() else []
        if not any(obj is command and opts.get("prog") == f"doge {name}" for obj, opts in documented):
            missing.append(f"{name} (docs/reference/cli/{name}.md with a click directive for it)")
        elif isinstance(command, click.Group) and not any(o.get("nested") == "full" for _, o in documented):
            missing.append(f"{name}'s subcommands (:nested: full)")
    assert not missing, f"commands without a reference page: {missing}"


def test_a_command_without_a_page_fails_the_check(monkeypatch):
    """The check above is not a formality: a new command with no page is caught."""
    from doge.cli.main import get_cli

    @click.command()
    def orphan():
        """A command nobody documented."""

    orphan.callback.__module__ = "doge.cli.orphan"
    monkeypatch.setitem(get_cli().commands, "orphan", orphan)
    with pytest.raises(AssertionError, match=r"orphan \(docs/reference/cli/orphan.md"):
        test_every_command_has_a_reference_page_with_its_subcommands()


def test_every_hook_has_a_section_and_an_example_plugin():
    from doge import hooks

    specs = sorted(name for name in dir(hooks) if hasattr(getattr(hooks, name), "doge_spec"))
    guide = (DOCS / "plugins" / "index.md").read_text()
    examples = "\n".join(p.read_text() for p in (DOCS / "examples").glob("*.py"))
    for spec in specs:
        assert re.search(rf"^## .*`{spec}`", guide, re.M), f"docs/plugins/index.md has no section for {spec}"
        assert f".. autofunction:: doge.hooks.{spec}" in guide, f"docs/plugins/index.md does not show {spec}'s contract"
        assert re.search(rf"@hookimpl\s+def {spec}\(", examples), (
            f"no example plugin in docs/examples implements {spec}"
        )


# -- the site, built as CI builds it --------------------------------------------------------------


def sphinx_available() -> None:
    try:
        import furo  # noqa: F401
        import myst_parser  # noqa: F401
        import sphinx  # noqa: F401
        import sphinx_click  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("the docs extra is not installed: pip install -e '.[docs]' (make install does it)")
        pytest.skip("the docs extra is not installed")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    sphinx_available()
    out = tmp_path_factory.mktemp("site")
    argv = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q", "-d", str(out / ".doctrees")]
    proc = subprocess.run(
        [*argv, str(DOCS), str(out)], capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    assert proc.returncode == 0, f"the site does not build strictly:\n{proc.stderr[-6000:]}"
    return out


@pytest.mark.slow
def test_the_site_builds_with_a_page_for_everything(site):
    for page in ("index", "getting-started", "concepts/gaps", "howto/classification", "plugins/index", "changelog"):
        assert (site / f"{page}.html").is_file(), page
    for name in builtin_commands():
        assert (site / "reference" / "cli" / f"{name}.html").is_file(), name
    gap = (site / "reference/cli/gap.html").read_text()
    assert 'id="cmdoption-doge-gap-create-estimator-option"' in gap  # generated from the click app
    assert "e.g. --estimator trimmed-mean --estimator-option trim=0.2" in gap  # no typographic dashes
    python = (site / "reference/python.html").read_text()
    for name in (
        "doge.api.render",
        "doge.api.augment",
        "doge.registry.Registry",
        "StableUnCLIPControlNetImg2ImgPipeline",
    ):
        assert f'id="{name}' in python or name in python, name
    assert "mean gap transfers" in (site / "concepts/estimators.html").read_text()  # BENCHMARKS.md's figures
    assert "[Unreleased]" in (site / "changelog.html").read_text()


def test_an_orphan_page_or_a_broken_link_fails_the_strict_build(tmp_path):
    sphinx_available()
    import shutil

    copy = tmp_path / "docs"
    shutil.copytree(DOCS, copy, ignore=shutil.ignore_patterns("figures", "_build"))
    (copy / "figures").mkdir()
    shutil.copy(DOCS / "figures" / "geometry-fits.png", copy / "figures")
    (copy / "orphan.md").write_text("# Nobody links here\n\nSee [nothing](no-such-page.md).\n")
    argv = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q", str(copy), str(tmp_path / "out")]
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode != 0
    assert "orphan.md" in proc.stderr and "isn't included in any toctree" in proc.stderr
    assert "no-such-page.md" in proc.stderr


def chromium() -> str:
    import shutil

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed (apt-get install chromium; .ci/run does it)")
        pytest.skip("Debian's chromium is not installed")
    return path


@pytest.mark.slow
def test_home_and_reference_pages_render_with_their_navigation_in_chromium(site):
    executable = chromium()
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))

            page.goto((site / "index.html").as_uri())
            assert page.title().startswith("doge")
            assert page.locator("h1").first.inner_text().startswith("doge")
            nav = page.locator(".sidebar-tree")
            assert nav.is_visible()
            captions = nav.locator(".caption")
            assert [c.strip() for c in captions.all_text_contents()] == ["Learn", "Reference", "Project"]
            assert captions.first.inner_text() == "LEARN"  # furo's stylesheet is applied (captions in capitals)
            for text in (
                "Getting started",
                "Concepts",
                "How-to guides",
                "Command line",
                "Python API",
                "Writing plugins",
            ):
                assert nav.get_by_role("link", name=text, exact=True).count() == 1, text

            nav.get_by_role("link", name="Command line", exact=True).click()
            page.wait_for_load_state()
            page.locator(".sidebar-tree").get_by_role("link", name="doge render", exact=True).click()
            page.wait_for_load_state()
            assert page.url.endswith("reference/cli/render.html")
            assert page.locator("h1").first.inner_text().startswith("doge render")
            assert page.locator("dt#cmdoption-doge-render-edit-weight").inner_text().startswith("--edit-weight")
            current = page.locator(".sidebar-tree li.current-page > a").inner_text()
            assert current == "doge render"
            page.locator(".sidebar-tree").get_by_role("link", name="doge gap", exact=True).click()
            page.wait_for_load_state()
            on_this_page = [t.strip() for t in page.locator(".toc-tree a").all_text_contents()]
            assert {"create", "list", "push", "eval"} <= set(on_this_page)  # "on this page": a subcommand each
        finally:
            browser.close()
    assert errors == []


def test_the_readme_is_short_and_its_links_into_the_site_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert readme.index("make demo") < readme.index("make test") < readme.index("## ")  # the two commands first
    links = re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", readme)
    assert any(link.startswith("docs/") for link in links)
    broken = [link for link in links if not (ROOT / link).is_file()]
    assert not broken, f"README links to files that do not exist: {broken}"
