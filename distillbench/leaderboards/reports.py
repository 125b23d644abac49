"""Reports: a statistic over several runs (a rank correlation across candidate students, a recommender's
regret across task settings), made by ``distillbench report NAME``.

A report is a plug-in: a `Report` subclass registered with `@register_report(name)` (a built-in one is
also listed in `distillbench.plugins`). It names the recipes it needs, ordinary recipes (usually one
committed recipe varied per candidate or setting, `vary_recipe`); each runs through the runner into
``<runs>/<recipe name>`` (cells keyed and resumable, its leaderboard published beside its store, as
``distillbench run`` does), and the report computes its statistic from what the runs stored
(`Run.cells`). The result is written as JSON, with Markdown beside it when the report renders one.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

from rich.console import Console

from distillbench.core.errors import UserInputError
from distillbench.core.files import write_text_atomic
from distillbench.core.plan import Plan
from distillbench.core.recipe import Recipe, parse_recipe, read_recipe_file
from distillbench.core.registry import REPORTS
from distillbench.core.runner import Runner
from distillbench.core.store import Store
from distillbench.leaderboards.publish import publish


def register_report(name: str, *, summary: str = ""):
    """Register a `Report` subclass under `name` (the NAME of ``distillbench report NAME``)."""

    def decorator(cls: type[Report]) -> type[Report]:
        cls.name = name
        return REPORTS.register(name, family="report", summary=summary)(cls)

    return decorator


@dataclass(frozen=True)
class Run:
    """One recipe's run, finished: its plan and the folder of its store."""

    recipe: Recipe
    plan: Plan
    out: Path

    def cells(self) -> list[dict[str, Any]]:
        """Every cell of the plan as the store holds it: cell key, label, kind, method, seed, model, cost, and
        metrics ({"<benchmark>/<metric>": {"mean", "ci95", "n"}}). A cell that failed or was not scored fails
        the report: a statistic over the cells that happened to finish would mislead."""
        store = Store(self.out / "results.sqlite")
        try:
            cells, problems = [], []
            for cell in self.plan.cells:
                record = store.cell(cell.key) or {}
                metrics = {f"{bench.name}/{metric}": summary for bench in self.plan.benchmarks
                           for metric, summary in store.metric_summaries(cell.key, bench.key).items()}
                if record.get("status") != "ready" or not all(store.evaluation_complete(cell.key, bench.key)
                                                              for bench in self.plan.benchmarks):
                    problems.append(f"{self.out}: {cell.folder}: {record.get('error') or 'not trained and scored'}")
                cells.append({"cell": cell.key, "label": cell.label, "kind": cell.kind, "method": cell.method_name,
                              "seed": cell.seed, "model": cell.model_ref, "cost": record.get("cost") or {},
                              "metrics": metrics})
        finally:
            store.close()
        if problems:
            raise UserInputError(problems)
        return cells


class Report(ABC):
    """A statistic over the runs of several recipes."""

    name: ClassVar[str] = ""  # set by `register_report`
    # torch's CPU threads while the report runs (None: torch's default). The thread count changes a CPU
    # run's floating-point sums, hence its numbers: a report whose committed result was made with a
    # given count says so here, so that the plain command reproduces it.
    threads: ClassVar[int | None] = None

    @abstractmethod
    def recipes(self) -> list[Recipe]:
        """The recipes to run, each with its own name (its run folder)."""

    @abstractmethod
    def summarise(self, runs: list[Run]) -> dict[str, Any]:
        """The report's result (JSON-serialisable) from the finished runs, in `recipes`' order."""

    def markdown(self, result: dict[str, Any]) -> str | None:
        """The result as Markdown, or None when the report has no Markdown form."""
        return None


def vary_recipe(path: Path, change: Callable[[dict[str, Any]], dict[str, Any]]) -> Recipe:
    """The recipe at `path` with `change` applied to its YAML before validation (relative paths stay
    relative to the recipe's folder)."""
    raw = read_recipe_file(path)
    if not isinstance(raw, dict):
        raise UserInputError(f"{path}: expected a mapping of recipe fields at the top level")
    varied = change(raw)
    return parse_recipe(varied, f"{path} (as {varied.get('name')})", base=path.parent)


def make_report(name: str, runs: Path, out: Path, console: Console | None = None) -> dict[str, Any]:
    """Run report `name`'s recipes into folders under `runs`, then write its result to `out` (JSON) and,
    when it renders one, Markdown beside it (`out` with suffix .md). Returns the result."""
    report = REPORTS.get(name)()
    with _torch_threads(report.threads):
        finished = [_run(recipe, runs / recipe.name, console) for recipe in report.recipes()]
        result = {"report": report.name, **report.summarise(finished)}
    write_text_atomic(out, json.dumps(result, indent=1) + "\n")
    text = report.markdown(result)
    if text is not None:
        write_text_atomic(out.with_suffix(".md"), text)
    return result


def _run(recipe: Recipe, out: Path, console: Console | None) -> Run:
    """Run `recipe` into `out` and publish its leaderboard there, as ``distillbench run`` does."""
    runner = Runner(recipe, out, console)
    plan = runner.run()
    publish(runner.out, plan, recipe, runner.console)
    return Run(recipe, plan, runner.out)


@contextlib.contextmanager
def _torch_threads(count: int | None) -> Iterator[None]:
    """torch's CPU thread count set to `count` (None: left alone) for the block, then restored."""
    import torch

    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
