"""The layer contract (issue #22, item 5): the import contracts of pyproject.toml hold (`lint-imports`),
distillbench modules are imported at module level (the plug-in list aside), and the core names no plug-in."""

import ast
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

# Imports of distillbench modules inside functions that remain, by file (relative to the package) and
# imported module, each with why.
FUNCTION_LEVEL_ALLOWED: dict[tuple[str, str], str] = {
    ("benchmarks/clip_score.py", "distillbench.benchmarks.image_metrics"): "to move to module level (issue #22, item 5)",
    ("benchmarks/image_benchmarks.py", "distillbench.benchmarks"): "to move to module level (issue #22, item 5)",
    ("benchmarks/image_benchmarks.py", "distillbench.benchmarks.geneval"): "to move to module level (issue #22, item 5)",
    ("benchmarks/image_metrics.py", "distillbench.core.errors"): "to move to module level (issue #22, item 5)",
    ("benchmarks/judges/hf.py", "distillbench.core.models"): "to move to module level (issue #22, item 5)",
    ("benchmarks/judges/hf.py", "distillbench.kinds.text_lm.generation"): "to move to module level (issue #22, item 5)",
    ("benchmarks/retrieval.py", "distillbench.pocket.shapes_retrieval"): "to move to module level (issue #22, item 5)",
    ("benchmarks/rewardbench.py", "distillbench.benchmarks.rewards"): "to move to module level (issue #22, item 5)",
    ("benchmarks/rewardbench.py", "distillbench.core.models"): "to move to module level (issue #22, item 5)",
    ("benchmarks/rewards.py", "distillbench.core.models"): "to move to module level (issue #22, item 5)",
    ("benchmarks/rewards.py", "distillbench.methods.base"): "to move to module level (issue #22, item 5)",
    ("benchmarks/top1.py", "distillbench.kinds.image_classifier.images"): "to move to module level (issue #22, item 5)",
    ("benchmarks/vlm/benchmarks.py", "distillbench.kinds.vlm.models"): "to move to module level (issue #22, item 5)",
    ("cli/main.py", "distillbench.cli.check"): "to move to module level (issue #22, item 5)",
    ("cli/main.py", "distillbench.core.recipe"): "to move to module level (issue #22, item 5)",
    ("cli/main.py", "distillbench.core.registry"): "to move to module level (issue #22, item 5)",
    ("cli/main.py", "distillbench.core.runner"): "to move to module level (issue #22, item 5)",
    ("cli/main.py", "distillbench.core.score_only"): "to move to module level (issue #22, item 5)",
    ("cli/main.py", "distillbench.core.store"): "to move to module level (issue #22, item 5)",
    ("cli/main.py", "distillbench.leaderboards.aggregate"): "to move to module level (issue #22, item 5)",
    ("cli/main.py", "distillbench.leaderboards.claims"): "to move to module level (issue #22, item 5)",
    ("cli/main.py", "distillbench.leaderboards.compare"): "to move to module level (issue #22, item 5)",
    ("cli/main.py", "distillbench.leaderboards.html"): "to move to module level (issue #22, item 5)",
    ("cli/main.py", "distillbench.leaderboards.publish"): "to move to module level (issue #22, item 5)",
    ("cli/main.py", "distillbench.leaderboards.render"): "to move to module level (issue #22, item 5)",
    ("cli/main.py", "distillbench.leaderboards.reported"): "to move to module level (issue #22, item 5)",
    ("cli/main.py", "distillbench.pocket"): "to move to module level (issue #22, item 5)",
    ("core/score_only.py", "distillbench.core.item_metrics"): "to move to module level (issue #22, item 5)",
    ("kinds/dataset_distillation/driver.py", "distillbench.benchmarks.dd_accuracy"): "being ported (issue #22)",
    ("kinds/dataset_distillation/driver.py", "distillbench.leaderboards.side_report"): "being ported (issue #22)",
    ("kinds/image_classifier/classifiers.py", "distillbench.core.models"): "to move to module level (issue #22, item 5)",
    ("kinds/image_classifier/images.py", "distillbench.core.train"): "to move to module level (issue #22, item 5)",
    ("kinds/retrieval/driver.py", "distillbench.benchmarks.retrieval"): "being ported (issue #22)",
    ("kinds/retrieval/driver.py", "distillbench.leaderboards.side_report"): "being ported (issue #22)",
    ("kinds/tabular/driver.py", "distillbench.leaderboards.side_report"): "being ported (issue #22)",
    ("kinds/tabular/driver.py", "distillbench.pocket.fair_tabular"): "being ported (issue #22)",
    ("kinds/text_lm/kind.py", "distillbench.core.train"): "to move to module level (issue #22, item 5)",
    ("kinds/text_lm/kind.py", "distillbench.kinds.text_lm.vllm_backend"): "to move to module level (issue #22, item 5)",
    ("kinds/text_to_image/sampling.py", "distillbench.core.errors"): "being ported (issue #22)",
    ("kinds/text_to_image/sampling.py", "distillbench.core.recipe"): "being ported (issue #22)",
    ("kinds/text_to_image/sampling.py", "distillbench.core.registry"): "being ported (issue #22)",
    ("kinds/text_to_image/sampling.py", "distillbench.core.score_only"): "being ported (issue #22)",
    ("kinds/text_to_image/sampling.py", "distillbench.pocket.t2i_zoo"): "being ported (issue #22)",
    ("leaderboards/claims.py", "distillbench.leaderboards.reported"): "to move to module level (issue #22, item 5)",
    ("leaderboards/html.py", "distillbench.core.recipe"): "to move to module level (issue #22, item 5)",
    ("leaderboards/html.py", "distillbench.core.registry"): "to move to module level (issue #22, item 5)",
    ("leaderboards/html.py", "distillbench.core.store"): "to move to module level (issue #22, item 5)",
    ("leaderboards/html.py", "distillbench.leaderboards.reported"): "to move to module level (issue #22, item 5)",
    ("leaderboards/render.py", "distillbench.leaderboards.reported"): "to move to module level (issue #22, item 5)",
    ("leaderboards/reported.py", "distillbench.core.registry"): "to move to module level (issue #22, item 5)",
    ("methods/base.py", "distillbench.methods.llm.chunked"): "being ported (issue #22)",
    ("methods/llm/chunked.py", "distillbench.methods.llm.sft"): "to move to module level (issue #22, item 5)",
    ("methods/llm/teacher_hacking.py", "distillbench.kinds.text_lm.generation"): "to move to module level (issue #22, item 5)",
    ("pocket/autodistiller_report.py", "distillbench.core.recipe"): "to move to module level (issue #22, item 5)",
    ("pocket/autodistiller_report.py", "distillbench.core.registry"): "to move to module level (issue #22, item 5)",
    ("pocket/autodistiller_report.py", "distillbench.core.train"): "to move to module level (issue #22, item 5)",
    ("pocket/autodistiller_report.py", "distillbench.kinds.image_classifier.classifiers"): "to move to module level (issue #22, item 5)",
    ("pocket/autodistiller_report.py", "distillbench.kinds.image_classifier.images"): "to move to module level (issue #22, item 5)",
    ("pocket/autodistiller_report.py", "distillbench.pocket.shapes_classifiers"): "to move to module level (issue #22, item 5)",
    ("pocket/image_board.py", "distillbench.core.plan"): "being ported (issue #22)",
    ("pocket/image_board.py", "distillbench.core.provenance"): "being ported (issue #22)",
    ("pocket/image_board.py", "distillbench.core.recipe"): "being ported (issue #22)",
    ("pocket/image_board.py", "distillbench.core.runner"): "being ported (issue #22)",
    ("pocket/image_board.py", "distillbench.core.score_only"): "being ported (issue #22)",
    ("pocket/image_board.py", "distillbench.core.store"): "being ported (issue #22)",
    ("pocket/image_board.py", "distillbench.kinds.text_to_image.sampling"): "being ported (issue #22)",
    ("pocket/image_board.py", "distillbench.leaderboards.aggregate"): "being ported (issue #22)",
    ("pocket/image_board.py", "distillbench.leaderboards.render"): "being ported (issue #22)",
    ("pocket/mtbench_world.py", "distillbench.pocket.math_world"): "to move to module level (issue #22, item 5)",
    ("pocket/shapes_classifiers.py", "distillbench.core.errors"): "to move to module level (issue #22, item 5)",
    ("pocket/shapes_classifiers.py", "distillbench.core.recipe"): "to move to module level (issue #22, item 5)",
    ("pocket/shapes_classifiers.py", "distillbench.core.train"): "to move to module level (issue #22, item 5)",
    ("pocket/shapes_classifiers.py", "distillbench.kinds.image_classifier.classifiers"): "to move to module level (issue #22, item 5)",
    ("pocket/shapes_classifiers.py", "distillbench.kinds.image_classifier.images"): "to move to module level (issue #22, item 5)",
    ("pocket/shapes_classifiers.py", "distillbench.methods.classify.ce"): "to move to module level (issue #22, item 5)",
    ("pocket/shapes_classifiers.py", "distillbench.pocket.shapes_clip_zeroshot"): "to move to module level (issue #22, item 5)",
    ("pocket/shapes_classifiers.py", "distillbench.pocket.zoo"): "to move to module level (issue #22, item 5)",
    ("pocket/shapes_clip.py", "distillbench.pocket.zoo"): "to move to module level (issue #22, item 5)",
    ("pocket/shapes_clip_zeroshot.py", "distillbench.kinds.image_classifier.classifiers"): "to move to module level (issue #22, item 5)",
    ("pocket/shapes_clip_zeroshot.py", "distillbench.kinds.image_classifier.clip_zeroshot"): "to move to module level (issue #22, item 5)",
    ("pocket/shapes_clip_zeroshot.py", "distillbench.pocket.zoo"): "to move to module level (issue #22, item 5)",
    ("pocket/shapes_retrieval.py", "distillbench.core.errors"): "to move to module level (issue #22, item 5)",
    ("pocket/shapes_retrieval.py", "distillbench.core.files"): "to move to module level (issue #22, item 5)",
    ("pocket/shapes_retrieval.py", "distillbench.pocket.zoo"): "to move to module level (issue #22, item 5)",
    ("pocket/shapes_vlm.py", "distillbench.benchmarks.vlm.chair"): "to move to module level (issue #22, item 5)",
    ("pocket/shapes_vlm.py", "distillbench.benchmarks.vlm.vqa"): "to move to module level (issue #22, item 5)",
    ("pocket/t2i_zoo.py", "distillbench.pocket.zoo"): "to move to module level (issue #22, item 5)",
    ("pocket/vlm_board.py", "distillbench.core.models"): "being ported (issue #22)",
    ("pocket/vlm_board.py", "distillbench.core.plan"): "being ported (issue #22)",
    ("pocket/vlm_board.py", "distillbench.core.provenance"): "being ported (issue #22)",
    ("pocket/vlm_board.py", "distillbench.core.recipe"): "being ported (issue #22)",
    ("pocket/vlm_board.py", "distillbench.core.runner"): "being ported (issue #22)",
    ("pocket/vlm_board.py", "distillbench.core.score_only"): "being ported (issue #22)",
    ("pocket/vlm_board.py", "distillbench.core.store"): "being ported (issue #22)",
    ("pocket/vlm_board.py", "distillbench.kinds.vlm.models"): "being ported (issue #22)",
    ("pocket/vlm_board.py", "distillbench.leaderboards.aggregate"): "being ported (issue #22)",
    ("pocket/vlm_board.py", "distillbench.leaderboards.render"): "being ported (issue #22)",
    ("pocket/vlm_board.py", "distillbench.pocket"): "being ported (issue #22)",
    ("pocket/vlm_zoo.py", "distillbench.pocket.shapes"): "to move to module level (issue #22, item 5)",
    ("pocket/vlm_zoo.py", "distillbench.pocket.tokenizer"): "to move to module level (issue #22, item 5)",
    ("pocket/vlm_zoo.py", "distillbench.pocket.zoo"): "to move to module level (issue #22, item 5)",
    ("pocket/zoo.py", "distillbench.core.recipe"): "to move to module level (issue #22, item 5)",
    ("pocket/zoo.py", "distillbench.core.train"): "to move to module level (issue #22, item 5)",
    ("pocket/zoo.py", "distillbench.kinds.text_lm.data"): "to move to module level (issue #22, item 5)",
    ("pocket/zoo.py", "distillbench.methods.llm.dpo"): "to move to module level (issue #22, item 5)",
    ("pocket/zoo.py", "distillbench.methods.llm.sft"): "to move to module level (issue #22, item 5)",
    ("pocket/zoo.py", "distillbench.pocket.math_world"): "to move to module level (issue #22, item 5)",
    ("pocket/zoo.py", "distillbench.pocket.mtbench_world"): "to move to module level (issue #22, item 5)",
    ("pocket/zoo.py", "distillbench.pocket.preferences"): "to move to module level (issue #22, item 5)",
    ("pocket/zoo.py", "distillbench.pocket.tokenizer"): "to move to module level (issue #22, item 5)",
}


def test_the_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    assert lint.is_file(), f"{lint} is missing: pip install -e '.[test]' (import-linter)"
    # From the repository root, lint-imports reads pyproject.toml and finds this checkout's distillbench first.
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


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
    found: dict[tuple[str, str], list[int]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path != PLUGIN_LIST:
            text, module = path.read_text(encoding="utf-8"), _module_name(path)
            for line, name in function_level_imports(text, module, path.name == "__init__.py"):
                found.setdefault((path.relative_to(PACKAGE).as_posix(), name), []).append(line)
    unlisted = [f"{file}:{lines[0]}: {name}" for (file, name), lines in sorted(found.items())
                if (file, name) not in FUNCTION_LEVEL_ALLOWED]
    assert not unlisted, ("import these at module level (a cycle is a sign of a misplaced function):\n"
                          + "\n".join(unlisted))
    stale = [f"{file}: {name}" for file, name in FUNCTION_LEVEL_ALLOWED if (file, name) not in found]
    assert not stale, "no longer imported inside a function; drop from FUNCTION_LEVEL_ALLOWED:\n" + "\n".join(stale)


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
    """Every registered method, benchmark and kind name (aliases included), and every method and benchmark
    family, with what it names. The kinds' family ("kind") is the core's own word, given by `register_kind`."""
    names = {}
    for registry in (METHODS, BENCHMARKS, KINDS):
        for entry in registry.entries():
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
