"""doge ships its type hints (py.typed): every function in the package says what it takes and gives.

A function with no annotation at all is one mypy checks only loosely and a reader must guess at;
this test names each one as ``path:line name`` so that it gets its types where it is written.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("doge", "plugins", "registry", "cli")
# Left out, by the name of a decorator (``@click.option(...)``, ``@gap.command("list")``, ``@hookimpl``):
# - click command callbacks (command, group, option, argument): click calls them with the parsed
#   options, whose types the decorators above them already state;
# - pluggy hook implementations (hookimpl): their signature is the hookspec's in doge.hooks, which is
#   annotated, and pluggy matches them by parameter name, so plugins copy it without annotations.
EXEMPT_DECORATORS = {"command", "group", "option", "argument", "hookimpl"}


def _decorator_name(decorator: ast.expr) -> str:
    """``click.option`` of ``@click.option("--x")``, ``hookimpl`` of ``@hookimpl``: the last name."""
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    if isinstance(target, ast.Attribute):
        return target.attr
    return target.id if isinstance(target, ast.Name) else ""


def _has_no_annotation(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    a = node.args
    params = [p for p in (*a.posonlyargs, *a.args, *a.kwonlyargs) if p.arg not in ("self", "cls")]
    params += [p for p in (a.vararg, a.kwarg) if p is not None]
    return node.returns is None and all(p.annotation is None for p in params)


def unannotated(root: Path = ROOT) -> list[str]:
    found = []
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                if any(_decorator_name(d) in EXEMPT_DECORATORS for d in node.decorator_list):
                    continue
                if _has_no_annotation(node):
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.name}")
    return found


def test_every_function_has_annotations():
    missing = unannotated()
    assert not missing, "annotate these functions (parameters and return type):\n" + "\n".join(missing)


def test_the_check_names_a_function_without_annotations(tmp_path):
    # the walk itself: an unannotated function is named, a click callback and a hookimpl are not
    (tmp_path / "doge").mkdir()
    (tmp_path / "doge" / "m.py").write_text(
        "import click\n"
        "def bare(x, *args, **kwargs):\n    pass\n"
        "def typed(x: int) -> None:\n    pass\n"
        "def only_kwargs(**kwargs: int):\n    pass\n"
        "@click.command()\n@click.option('--n')\ndef cmd(n):\n    pass\n"
        "@hookimpl\ndef register_controls(register):\n    pass\n"
        "class C:\n    async def __call__(self, scope):\n        pass\n"
    )
    assert unannotated(tmp_path) == ["doge/m.py:2 bare", "doge/m.py:16 __call__"]
