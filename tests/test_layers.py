"""The layer contract (issue #22, item 5): the import contracts of pyproject.toml hold (`lint-imports`),
distillbench modules are imported at module level (the plug-in list aside), and the core names no plug-in."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import distillbench
from distillbench.core.registry import BENCHMARKS, KINDS, METHODS

ROOT = Path(distillbench.__file__).resolve().parents[1]
PACKAGE = ROOT / "distillbench"
# The one module that may import distillbench modules inside a function (it needs none today).
PLUGIN_LIST = PACKAGE / "plugins.py"

def test_the_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    assert lint.is_file(), f"{lint} is missing: pip install -e '.[test]' (import-linter)"
    # From the repository root, lint-imports reads pyproject.toml and finds this checkout's distillbench first.
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_ignored_import_says_why():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    for block in re.findall(r"^ignore_imports = \[\n(.*?)^\]", text, re.S | re.M):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        assert lines[0].startswith("#"), f"give the reason in a comment above {lines[0]}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.Import | ast.ImportFrom, module: str, package: bool) -> list[str]:
    """The modules an import statement names (a relative import resolved against `module`)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not node.level:
        return [node.module]
    base = module.split(".")[: len(module.split(".")) - node.level + package]
    return [".".join(base + ([node.module] if node.module else []))]


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def function_level_imports(text: str, module: str, package: bool = False) -> list[tuple[int, str]]:
    """(line, module) of every import of a distillbench module inside a function of `module`'s source
    `text`, outside ``if TYPE_CHECKING:`` blocks."""
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking(child):
                continue
            if in_function and isinstance(child, (ast.Import, ast.ImportFrom)):
                found.extend((child.lineno, name) for name in _imported(child, module, package)
                             if name.split(".")[0] == "distillbench")
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(text), False)
    return found


def test_distillbench_modules_are_imported_at_module_level():
    found = [f"{path.relative_to(PACKAGE)}:{line}: {name}" for path in sorted(PACKAGE.rglob("*.py")) if path != PLUGIN_LIST
             for line, name in function_level_imports(path.read_text(encoding="utf-8"), _module_name(path),
                                                      path.name == "__init__.py")]
    assert not found, ("import these at module level (a cycle is a sign of a misplaced function):\n"
                       + "\n".join(found))


def test_function_level_imports_are_found():
    text = ("from typing import TYPE_CHECKING\nimport distillbench.core.errors\n"
            "def f():\n    from . import stats\n    import json\n    if TYPE_CHECKING:\n"
            "        from distillbench.kinds import text_lm\n"
            "class C:\n    def g(self):\n        from ..kinds.text_lm import data\n")
    assert function_level_imports(text, "distillbench.core.plan") == [(4, "distillbench.core"),
                                                                       (10, "distillbench.kinds.text_lm")]
    assert function_level_imports("def f():\n    from . import x\n", "distillbench.core", True) == [
        (2, "distillbench.core")]


def _plugin_names() -> dict[str, str]:
    """Every built-in method, benchmark and kind name (aliases included), and every method and benchmark
    family, with what it names (not what tests or other packages register). The kinds' family ("kind") is
    the core's own word, given by `register_kind`."""
    names = {}
    for registry in (METHODS, BENCHMARKS, KINDS):
        for entry in registry.entries():
            if not entry.obj.__module__.startswith("distillbench."):
                continue
            names.update(dict.fromkeys((entry.name, *entry.aliases), f"{registry.kind} name"))
            if registry is not KINDS and entry.family:
                names.setdefault(entry.family, f"{registry.kind} family")
    return names


def _named_literals(text: str, names: dict[str, str]) -> list[ast.Constant]:
    """The string literals of `text` that are one of `names`; docstrings are not literals (comments are not
    in the tree)."""
    tree = ast.parse(text)
    nodes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, nodes) and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [node for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings and node.value in names]


def test_the_core_names_no_plugin():
    names = _plugin_names()
    found = [f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r} is a {names[node.value]}"
             for path in sorted((PACKAGE / "core").rglob("*.py"))
             for node in _named_literals(path.read_text(encoding="utf-8"), names)]
    assert not found, "the core must ask its registries, not name a plug-in:\n" + "\n".join(found)


@pytest.mark.parametrize("literal, flagged", [("'sft'", True), ("'llm'", True), ("'pocket-math'", True),
                                               ("'text-lm'", True), ("'kind'", False), ("'sft-x'", False)])
def test_the_names_check_sees_literals_not_docstrings(literal, flagged):
    text = f'"""sft"""\ndef f():\n    """llm"""\n    return {literal}  # pocket-math\n'
    assert bool(_named_literals(text, _plugin_names())) == flagged
