"""The documentation's runnable examples: blocks marked ``<!-- runnable -->`` in docs/**/*.md.

A marker is an HTML comment on the line before a fenced block (``sh``, ``bash`` or ``python``);
it renders as nothing on the site. Every runnable block of a page runs, in order, in one fresh
folder with its own ``DOGE_HOME`` and ``HF_HUB_OFFLINE=1``, shell blocks with ``bash -e`` and
Python blocks with the test's interpreter, so that a page reads as one session a user types:

- ``<!-- runnable -->``: the folder starts empty; the page makes what it uses.
- ``<!-- runnable: sample -->``: the folder holds what Getting started makes first, the random
  tiny model in ``tiny-model/``, sample photographs in ``data/real`` and paintings in
  ``data/painting``, and the home a gap ``real->painting@v1`` made from them with the tiny model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"
MARKER = re.compile(
    r"^<!--\s*runnable(?::\s*(?P<mode>[\w-]+))?\s*-->[ \t]*\n```(?P<lang>[\w-]+)[^\n]*\n(?P<code>.*?)^```[ \t]*$",
    re.S | re.M,
)
LANGUAGES = {"sh": "shell", "bash": "shell", "console": "shell", "python": "python"}
MODES = ("empty", "sample")


@dataclass(frozen=True)
class Block:
    page: str  # relative to docs/
    line: int
    language: str  # "shell" or "python"
    mode: str
    code: str


def runnable_blocks(docs: Path = DOCS) -> dict[str, list[Block]]:
    """Page → its runnable blocks in order; a malformed marker is an error naming the page and line."""
    pages: dict[str, list[Block]] = {}
    for path in sorted(docs.rglob("*.md")):
        text = path.read_text(encoding="utf-8")
        page = path.relative_to(docs).as_posix()
        found = list(MARKER.finditer(text))
        markers = len(re.findall(r"^<!--\s*runnable\b", text, re.M))
        if markers != len(found):
            raise ValueError(f"docs/{page}: a <!-- runnable --> marker is not on the line right before a fenced block")
        for match in found:
            line = text.count("\n", 0, match.start()) + 2
            lang = LANGUAGES.get(match["lang"])
            mode = match["mode"] or "empty"
            if lang is None or mode not in MODES:
                raise ValueError(
                    f"docs/{page}:{line}: runnable blocks are sh, bash or python, in mode {' or '.join(MODES)}"
                )
            code = match["code"]
            if match["lang"] == "console":  # only the typed lines: "$ doge ..."
                code = "\n".join(x[2:] for x in code.splitlines() if x.startswith("$ ")) + "\n"
            pages.setdefault(page, []).append(Block(page, line, lang, mode, code))
    for page, blocks in pages.items():
        if len({b.mode for b in blocks}) > 1:
            raise ValueError(f"docs/{page}: its runnable blocks mix modes {sorted({b.mode for b in blocks})}")
    return pages
