"""`doge serve` in a real browser: the command on a loopback port, headless Chromium (Debian's
`chromium`) driven by Playwright. On CI a missing browser fails the test; elsewhere it skips.

``DOGE_UPDATE_SCREENSHOT=1`` also writes the version page's screenshot to docs/serve-version.png
(the README's picture) and the library's to docs/serve-library.png.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "Debian's chromium is not installed (apt-get install chromium; .ci/run does it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright is not installed: pip install -e '.[test]'")
        pytest.skip("playwright is not installed")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def library_home(tmp_path_factory, tiny_model, domains):
    """Two gaps made with the tiny model; real->painting@v1 has a rendered preview and a stored
    evaluation with its plot."""
    from doge.api import create_gap, preview
    from doge.quality.evaluate import evaluate_gap
    from doge.registry import Registry

    home = tmp_path_factory.mktemp("served")
    reg = Registry(home=home)
    common = {"model": str(tiny_model), "registry": reg, "progress": False, "workers": 0}
    create_gap("real->painting", domains["real"], domains["painting"], description="photos to oil paintings", **common)
    create_gap("painting->real", domains["painting"], domains["real"], description="the way back", **common)
    reg.tag("real->painting@v1", "prod")
    reg.label("real->painting@v1", {"team": "vision"})
    preview(
        "real->painting", domains["real"], n=2, model=str(tiny_model), controlnets=[str(tiny_model / "controlnet")],
        size=64, steps=2, registry=reg, progress=False,
    )  # fmt: skip
    evaluate_gap(
        "real->painting", domains["real"], domains["painting"], weights=[0.0, 1.0, 2.0], draws=2, estimators=False,
        plot=home / "eval.png", registry=reg, progress=False, workers=0,
    )  # fmt: skip
    reg.close()
    return home


@pytest.fixture(scope="module")
def server(library_home):
    port = free_port()
    env = {**os.environ, "DOGE_HOME": str(library_home)}
    env.pop("DOGE_REGISTRY_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "doge.cli.main", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/api/gaps", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode() if proc.poll() is not None else "(still running)"
                    pytest.fail(f"doge serve did not answer on {base}: {out}")
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.slow
def test_library_search_and_version_page_in_chromium(server, tmp_path):
    from playwright.sync_api import sync_playwright

    executable = chromium()
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))

            page.goto(server + "/")
            names = page.locator("a.name").all_inner_texts()
            assert names == ["painting->real", "real->painting"]
            assert page.locator("#total").inner_text() == "2"
            thumb = page.locator("a.thumb img")
            assert thumb.count() == 1
            assert thumb.evaluate("img => img.complete && img.naturalWidth") > 0
            if os.environ.get("DOGE_UPDATE_SCREENSHOT"):
                page.screenshot(path=str(DOCS / "serve-library.png"))

            page.fill("input[name=search]", "oil")
            page.click("button[type=submit]")
            page.wait_for_load_state()
            assert page.locator("a.name").all_inner_texts() == ["real->painting"]
            assert "search=oil" in page.url

            page.click("a.ref")  # the latest version
            page.wait_for_load_state()
            assert page.url.endswith("/gaps/" + quote("real->painting@v1", safe="@"))
            assert "photos to oil paintings" in page.content()
            preview = page.locator("figure.preview img")
            plot = page.locator("img.plot")
            assert preview.count() == 1 and plot.count() == 1
            for image in (preview, plot):
                image.scroll_into_view_if_needed()
                assert image.evaluate("img => img.complete && img.naturalWidth") > 0
            assert plot.evaluate("img => img.naturalWidth") > 2 * plot.evaluate("img => img.naturalHeight")
            page.screenshot(path=str(tmp_path / "version.png"), full_page=True)
            if os.environ.get("DOGE_UPDATE_SCREENSHOT"):
                page.evaluate("window.scrollTo(0, 0)")
                page.screenshot(path=str(DOCS / "serve-version.png"))
        finally:
            browser.close()
    assert errors == []
    assert (tmp_path / "version.png").stat().st_size > 10_000
