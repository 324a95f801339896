"""`doge serve` in a real browser: the command on a loopback port, headless Chromium (Debian's
`chromium`) driven by Playwright. On CI a missing browser fails the test; elsewhere it skips.

``DOGE_UPDATE_SCREENSHOT=1`` also writes the version page's screenshot to docs/serve-version.png
(the README's picture) and the library's to docs/serve-library.png.
"""

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
from helpers import free_port

DOCS = Path(__file__).resolve().parents[2] / "docs"


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


@contextmanager
def chromium_page(errors: list[str]):
    """A page of headless Chromium (1100 x 900) that appends its console errors, page errors and
    failed requests to ``errors``; the browser closes afterwards."""
    from playwright.sync_api import sync_playwright

    executable = chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
            yield page
        finally:
            browser.close()


@contextmanager
def doge_serve(home, *args, probe: str, env=None):
    """``doge serve`` over ``home`` with ``args`` in a child process on a free loopback port; yields
    its URL once ``probe`` answers (fails the test after 60 s or when the child exits)."""
    port = free_port()
    env = {**os.environ, "DOGE_HOME": str(home), **(env or {})}
    env.pop("DOGE_REGISTRY_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "doge.cli.main", "serve", "--port", str(port), *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + probe, timeout=2).read()
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
    with doge_serve(library_home, probe="/api/gaps") as base:
        yield base


@pytest.mark.slow
def test_library_search_and_version_page_in_chromium(server, tmp_path):
    errors: list[str] = []
    with chromium_page(errors) as page:
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
    assert errors == []
    assert (tmp_path / "version.png").stat().st_size > 10_000


# -- a dataset made by doge augment, reviewed in the browser --------------------------------------


@pytest.fixture(scope="module")
def dataset_server(tmp_path_factory, gap_home, tiny_model, domains):
    """A COCO augment run (two 96 x 64 sources with a box each, --fit keep at 64 px) served with
    --dataset, writes allowed, one image a page."""
    from test_serve_datasets import augment_coco, coco_source

    base = tmp_path_factory.mktemp("reviewed")
    src = coco_source(base / "coco", domains)
    out, work = base / "aug", base / "work"
    augment_coco(src, out, gap_home, tiny_model, work=work)
    args = ["--dataset", out, "--allow-writes", "--dataset-page-size", "1"]
    with doge_serve(gap_home, *args, probe="/api/datasets", env={"DOGE_SERVE_TOKEN": "alice:s3cret-token"}) as url:
        yield {"url": url, "src": src, "out": out, "work": work, "home": gap_home, "model": tiny_model}


@pytest.mark.slow
def test_dataset_page_draws_boxes_pages_filters_and_a_rejection_reaches_the_next_run(dataset_server, tmp_path):
    import json

    from test_serve_datasets import augment_coco, expected_box

    errors: list[str] = []
    url = dataset_server["url"] + "/datasets/aug"
    with chromium_page(errors) as page:
        page.goto(url)
        page.wait_for_load_state("networkidle")
        assert page.locator("#matching").inner_text() == "2"

        # The drawn box sits where the source's box [12, 6, 30, 20] lands in the generated image
        # (through the geometry its render recorded), scaled by the picture's size on the page.
        (x, y, w, h), (width, height) = expected_box(
            dataset_server["out"], page.locator("li.cell").first.get_attribute("data-id")
        )
        picture = page.locator("li.cell svg image.picture").first.bounding_box()
        box = page.locator("li.cell svg rect.box[data-category^='<script>']").first.bounding_box()
        scale = picture["width"] / width
        assert picture["width"] > 100 and abs(picture["height"] / height - scale) < 0.01
        near = scale * (max(width, height) / 128) + 0.5  # the stroke may count in the box or not
        assert abs(box["x"] - (picture["x"] + x * scale)) < near
        assert abs(box["y"] - (picture["y"] + y * scale)) < near
        assert abs(box["width"] - w * scale) < 2 * near and abs(box["height"] - h * scale) < 2 * near
        # The thumbnail under it was loaded (pixels, not a broken image): its screenshot is not blank.
        shot = page.screenshot(clip=picture)
        assert len(shot) > 2000
        page.screenshot(path=str(tmp_path / "dataset.png"), full_page=True)

        # Paging: one image a page.
        first_id = page.locator("li.cell").first.get_attribute("data-id")
        page.click("#next")
        page.wait_for_load_state()
        assert page.locator("#page").inner_text() == "2"
        assert page.locator("li.cell").first.get_attribute("data-id") != first_id
        page.click("#previous")
        page.wait_for_load_state()

        # Filters: by class and by status.
        page.select_option("select[name=status]", "rejected")
        page.click("#apply")
        page.wait_for_load_state()
        assert page.locator("#matching").inner_text() == "0" and "status=rejected" in page.url
        page.select_option("select[name=status]", "all")
        page.select_option("select[name=class]", "road")
        page.click("#apply")
        page.wait_for_load_state()
        assert page.locator("#matching").inner_text() == "2"

        # A rejection made in the page: tick the first image, give the token, reject.
        page.goto(url)
        victim = page.locator("li.cell").first.get_attribute("data-id")
        page.check("li.cell input[type=checkbox]")
        page.fill("input[name=token]", "s3cret-token")
        page.click("#reject")
        page.wait_for_load_state()
        assert page.locator("li.cell").first.get_attribute("class").split() == ["cell", "status-rejected"]
        page.goto(url + "?status=rejected")
        assert page.locator("#matching").inner_text() == "1"
        assert page.locator("li.cell").first.get_attribute("data-id") == victim
        marks = json.loads((dataset_server["out"] / "doge-curation.json").read_text())["images"]
        assert marks[victim]["verdict"] == "rejected" and marks[victim]["by"] == "alice"

        # The next run of the same augment drops it and refills the slot with a new seed.
        summary = augment_coco(
            dataset_server["src"], dataset_server["out"], dataset_server["home"], dataset_server["model"],
            work=dataset_server["work"],
        )  # fmt: skip
        assert summary["curation"]["rejected_by_people"] == 1 and summary["generated"] == 2
        page.goto(url + "?status=rejected")
        assert page.locator("#matching").inner_text() == "0"
        page.goto(url)
        assert page.locator("#matching").inner_text() == "2"
        ids = set()
        for _ in range(2):
            ids.add(page.locator("li.cell").first.get_attribute("data-id"))
            if page.locator("#next").count():
                page.click("#next")
                page.wait_for_load_state()
        assert victim not in ids and len(ids) == 2
    assert errors == []
