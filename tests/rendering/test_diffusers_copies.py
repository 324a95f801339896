"""Code that follows diffusers, checked against the installed diffusers (the idea of diffusers' own
``utils/check_copies.py``).

A block taken from diffusers opens with a comment ``# from diffusers 0.42.1: Class.method ...``
naming what it follows (a continuation comment may name more). ``UPSTREAM`` below holds a digest
of each named upstream function as it was when the block was written: its syntax tree without
docstrings, so that comments and formatting do not count. When a new diffusers changes one, the
test fails naming each block that follows it: compare the block with the new source, port what
changed, then record the new digest here.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "doge", ROOT / "plugins", ROOT / "registry", ROOT / "cli"]

# The digest of each diffusers function a block follows, as of the version its marker names
# (0.42.0 and 0.42.1 give the same digests).
UPSTREAM = {
    "MultiControlNetModel.forward": "13049f27108062de",
    "StableDiffusionControlNetPipeline.__call__": "415d4da2bcb9b7ee",
    "StableDiffusionControlNetPipeline.__init__": "36629cd3358a2379",
    "StableDiffusionControlNetPipeline.prepare_image": "6da455942817e70b",
    "StableUnCLIPImg2ImgPipeline.__call__": "ae1b7a29fabcf5a4",
    "StableUnCLIPImg2ImgPipeline._encode_image": "c083564026a3ccc9",
}

_MARKER = re.compile(r"#\s*from diffusers (?P<version>[0-9][\w.]*):")
_NAME = re.compile(r"\b([A-Z][A-Za-z0-9]+)\.(_{0,2}[a-z]\w*)")


@dataclass(frozen=True)
class Block:
    where: str  # path:line of the marker
    version: str  # the diffusers version it names
    follows: tuple[str, ...]  # "Class.method" names


def find_blocks(roots=SOURCES) -> list[Block]:
    """Every ``# from diffusers V: ...`` marker under ``roots``, with the names it and the comment
    lines straight after it give."""
    blocks = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            lines = path.read_text(encoding="utf-8").splitlines()
            for i, line in enumerate(lines):
                found = _MARKER.search(line)
                if not found or not line.lstrip().startswith("#"):
                    continue
                comment = [line[found.end() :]]
                for more in lines[i + 1 :]:
                    if not more.lstrip().startswith("#"):
                        break
                    comment.append(more)
                names = tuple(dict.fromkeys(f"{c}.{m}" for c, m in _NAME.findall(" ".join(comment))))
                blocks.append(Block(f"{path.relative_to(root.parent)}:{i + 1}", found["version"], names))
    return blocks


def digest(fn: Callable) -> str:
    """sha256 (16 hex digits) of ``fn``'s syntax tree with docstrings left out."""
    return digest_source(inspect.getsource(fn))


def digest_source(source: str) -> str:
    tree = ast.parse(textwrap.dedent(source))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:16]


def upstream(name: str) -> Callable:
    import diffusers

    cls_name, _, attr = name.partition(".")
    return getattr(getattr(diffusers, cls_name), attr)


def problems(blocks: list[Block], recorded: dict[str, str], lookup=upstream) -> list[str]:
    """One line per block whose upstream changed (or is gone, or was never recorded)."""
    import diffusers

    out = []
    for block in blocks:
        if not block.follows:
            out.append(f"{block.where}: the diffusers marker names no Class.method it follows")
        for name in block.follows:
            if name not in recorded:
                out.append(f"{block.where} follows diffusers' {name}, whose digest is not recorded in UPSTREAM")
                continue
            try:
                now = digest(lookup(name))
            except (AttributeError, ImportError, OSError, TypeError) as exc:
                out.append(
                    f"{block.where} follows diffusers' {name}, which diffusers {diffusers.__version__} lacks: {exc}"
                )
                continue
            if now != recorded[name]:
                out.append(
                    f"{block.where} follows diffusers' {name}, which changed upstream since {block.version} "
                    f"(diffusers {diffusers.__version__}: {now}, recorded {recorded[name]}): compare the block with "
                    "the new source, port what changed, then record the new digest in UPSTREAM"
                )
    return out


def test_every_block_taken_from_diffusers_still_matches_the_installed_diffusers():
    blocks = find_blocks()
    assert len(blocks) >= 7, blocks  # the markers are found (pipeline.py has seven)
    assert {name for b in blocks for name in b.follows} == set(UPSTREAM)
    found = problems(blocks, UPSTREAM)
    assert not found, "\n".join(found)


def test_a_changed_upstream_function_fails_naming_the_block(tmp_path):
    (tmp_path / "engine.py").write_text(
        "def step():\n"
        "    # from diffusers 0.42.1: StableUnCLIPImg2ImgPipeline._encode_image (pipeline_stable_unclip_img2img.py),\n"
        "    # with the noise of StableDiffusionControlNetPipeline.prepare_image\n"
        "    return 1\n"
    )
    blocks = find_blocks([tmp_path])
    assert [b.follows for b in blocks] == [
        ("StableUnCLIPImg2ImgPipeline._encode_image", "StableDiffusionControlNetPipeline.prepare_image")
    ]

    def changed(name):
        if name == "StableDiffusionControlNetPipeline.prepare_image":

            def prepare_image(self, image):
                """A new docstring alone would not count; a new line of code does."""
                return image * 2

            return prepare_image
        return upstream(name)

    found = problems(blocks, UPSTREAM, lookup=changed)
    assert len(found) == 1
    assert found[0].startswith(
        f"{tmp_path.name}/engine.py:2 follows diffusers' StableDiffusionControlNetPipeline.prepare_image"
    )
    assert "changed upstream since 0.42.1" in found[0]


def test_a_docstring_comment_or_layout_change_upstream_is_not_a_change():
    before = 'def f(x):\n    """Old words."""\n    return x + 1\n'
    after = 'def f(x):\n    """New words."""\n    # a comment\n    return (x +\n            1)\n'
    different = 'def f(x):\n    """Old words."""\n    return x + 2\n'
    assert digest_source(before) == digest_source(after)
    assert digest_source(before) != digest_source(different)
