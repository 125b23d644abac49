import pytest

from distillbench.core.errors import UserInputError
from distillbench.core.registry import BENCHMARKS, JUDGES, METHODS, MODEL_BACKENDS, Registry


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
