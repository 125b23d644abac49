import copy
import importlib
import json
import pkgutil
import subprocess
import sys
from functools import reduce
from pathlib import Path

import pytest

import distillbench
from distillbench.core.errors import UserInputError
from distillbench.core.registry import BENCHMARKS, JUDGES, METHODS, MODEL_BACKENDS, REGISTRIES, Registry
from distillbench.plugins import BUILTINS

ROOT = Path(distillbench.__file__).resolve().parents[1]


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UserInputError, match="did you mean 'kd'"):
        METHODS.get("kdd")
    with pytest.raises(UserInputError, match="did you mean 'pocket-math'"):
        BENCHMARKS.get("pocket_math")


def test_unknown_name_without_close_match_lists_known():
    with pytest.raises(UserInputError, match="known: .*sft"):
        METHODS.get("zzzzzz")


def test_decorator_registers_and_refuses_a_second_object_under_one_name():
    registry: Registry[type] = Registry("widget")

    @registry.register("a", family="x", paper="P")
    class A:
        """First line is the summary.

        More text."""

    assert registry.entry("a").summary == "First line is the summary."
    assert [e.name for e in registry.entries(family="x")] == ["a"]
    assert list(registry.entries(family="y")) == []
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a")(type("B", (), {}))


def test_builtin_registries_are_populated():
    assert {"sft", "kd"} <= set(METHODS.names())
    assert "pocket-math" in BENCHMARKS
    assert {"pocket", "hf", "local"} <= set(MODEL_BACKENDS.names())
    assert JUDGES.kind == "judge"


def test_an_alias_finds_the_registered_entry_and_keys_as_it():
    from distillbench.core.plan import benchmark_run

    assert BENCHMARKS.get("clipscore") is BENCHMARKS.get("clip-score") and "pocket-clipscore" in BENCHMARKS
    by_alias, by_name = benchmark_run("pocket-clipscore", {"samples": 4}), benchmark_run("pocket-clip-score", {"samples": 4})
    assert (by_alias.name, by_alias.key) == (by_name.name, by_name.key) == ("pocket-clip-score", by_name.key)
    registry = Registry("thing")
    registry.register("a", aliases=("b",))(object)
    with pytest.raises(ValueError, match="alias 'b' names another entry"):
        registry.register("c", aliases=("b",))(int)


def test_list_shows_the_aliases(capsys):
    from distillbench.cli.main import main

    assert main(["list", "benchmarks", "--family", "image"]) == 0
    out = capsys.readouterr().out
    assert "clip-score (also clipscore)" in out and "pocket-clip-score (also pocket-clipscore)" in out


def test_the_plugin_list_lists_every_name_a_distillbench_module_registers():
    for module in pkgutil.walk_packages(distillbench.__path__, "distillbench."):
        importlib.import_module(module.name)  # every decorator runs, whatever the list says
    assert set(BUILTINS) == set(REGISTRIES)
    for group, registry in REGISTRIES.items():
        builtin = [e for e in registry.entries() if e.obj.__module__.startswith("distillbench.")]  # not tests' own
        registered = {name for e in builtin for name in (e.name, *e.aliases)}
        assert registered - set(BUILTINS[group]) == set(), f"add these {group} to distillbench/plugins.py"
        assert set(BUILTINS[group]) - registered == set(), f"distillbench/plugins.py lists {group} nothing registers"


def test_each_listed_name_points_at_the_object_registered_under_it():
    for group, targets in BUILTINS.items():
        registry = REGISTRIES[group]
        for name, target in targets.items():
            module, _, attr = target.partition(":")
            assert registry.get(name) is reduce(getattr, attr.split("."), importlib.import_module(module)), name
        list(registry.entries())  # listing checks every line again


@pytest.fixture
def plugin_list():
    """Lines added to the plug-in list for one test; the list and the registries' indexes are restored after."""
    saved = copy.deepcopy(BUILTINS)

    def add(group: str, name: str, target: str) -> None:
        BUILTINS[group][name] = target
        REGISTRIES[group].refresh()

    yield add
    BUILTINS.clear()
    BUILTINS.update(saved)
    for registry in REGISTRIES.values():
        registry.refresh()


@pytest.mark.parametrize("name, target, problem", [
    ("kd", "distillbench.methods.llm.sft:SFT", "'kd' is registered as .*KD.*, another object"),
    ("sft-again", "distillbench.methods.llm.sft:SFT", "that object is registered as 'sft'"),
    ("nll", "distillbench.methods.llm.sft:sft_loss", "nothing registers 'nll'")])
def test_a_line_pointing_at_another_object_fails_on_listing(plugin_list, name, target, problem):
    plugin_list("methods", name, target)
    with pytest.raises(RuntimeError, match=f"method '{name}' is listed as {target} \\(distillbench.plugins\\), but {problem}"):
        list(METHODS.entries())


def test_a_lookup_imports_only_the_module_that_registers_the_name():
    code = ("import sys; from distillbench.core.registry import METHODS; METHODS.get('sft'); "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('distillbench.methods', 'distillbench.benchmarks')))))")
    # -P and the checkout first on sys.path: this checkout's package, not the one an editable install points at.
    out = subprocess.run([sys.executable, "-P", "-c", f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); {code}"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == ["distillbench.methods", "distillbench.methods.base", "distillbench.methods.llm",
                         "distillbench.methods.llm.chunked", "distillbench.methods.llm.sft"]


def test_list_kinds_names_every_registered_kind(capsys):
    from distillbench.cli.main import main
    from distillbench.core.registry import KINDS

    assert main(["list", "kinds"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in KINDS.names()) and "text-lm" in out
