"""Sphinx configuration of doge's documentation site (see docs/README.md)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))  # doge_docs: directives drawing on doge's own data
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The CLI reference documents the whole application, built-in commands added through the
# register_commands hook as doge builds it at start-up (not only the bare group).
from doge.cli.main import get_cli  # noqa: E402

get_cli()

import doge  # noqa: E402

project = "doge"
author = "the doge authors"
copyright = "2026, the doge authors"
release = doge.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_click",
    "doge_docs",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
# docs/README.md describes the site to its authors; examples/ and figures/ hold sources, not pages.
exclude_patterns = ["README.md", "_build", "_ext", "examples", "figures"]

myst_enable_extensions = ["colon_fence", "deflist", "fieldlist", "substitution"]
# ## headings get anchors, so [the manifest](manifest.md#reproducible-and-resumable) links work.
myst_heading_anchors = 3

html_theme = "furo"
html_title = f"doge {release}"
html_static_path = ["_static"]
html_css_files = ["doge.css"]
html_theme_options = {
    "navigation_with_keys": True,
}

autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_mock_imports: list[str] = []
napoleon_google_docstring = True
napoleon_numpy_docstring = True

nitpicky = False
# Help texts say --grid and --fit: no typographic dashes or quotes in them.
smartquotes = False


class _EmptyGlobFilter(logging.Filter):
    """concepts/ and howto/ list their pages in reading order, then glob the rest ("*"), so that a
    page added later joins the navigation without an edit; that glob may match nothing meanwhile.
    Sphinx logs it without a warning type, so suppress_warnings cannot name it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "subtype", None) != "empty_glob"


def setup(app):
    logging.getLogger("sphinx.sphinx.directives.other").addFilter(_EmptyGlobFilter())
