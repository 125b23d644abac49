"""`distillbench run RECIPE --check`: validate and plan a recipe without building, downloading or training a
model, and print its cells, reference rows and what each needs."""

from __future__ import annotations

import dataclasses

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from distillbench.core.errors import UserInputError
from distillbench.core.plan import make_plan
from distillbench.core.recipe import Recipe
from distillbench.core.registry import KINDS
from distillbench.core.tune import grid_size, search_space


def print_check(path: str, recipe: Recipe, absent: list[str]) -> None:
    """Print the plan of a validated recipe and the local inputs `absent` here (noted while it loaded and
    planned, see core.inputs); raise UserInputError with what would fail before training."""
    kind = KINDS.get(recipe.kind)(recipe, recipe.output_path())
    plan = make_plan(recipe, kind, identify=lambda ref: ref)  # keys need the models' files: not here
    problems = kind.offline_problems(plan)
    if problems:
        raise UserInputError([f"{path}: {line}" for line in problems])
    console = Console(width=200)
    references = [cell for cell in plan.cells if cell.kind == "reference"]
    methods = [cell for cell in plan.cells if cell.kind == "method"]
    console.print(escape(f"{path}: kind {recipe.kind}, {len(references)} reference row(s), {len(methods)} method "
                         f"cell(s) ({len(recipe.seeds)} seed(s)), {len(plan.benchmarks)} benchmark(s); output "
                         f"{recipe.output_path()}"))
    table = Table(title="cells")
    for column in ("row", "seeds", "model", "needs"):
        table.add_column(column)
    for cell in references:
        options = ", ".join(f"{k}={v}" for k, v in cell.options.items())
        table.add_row(escape(cell.label), "", escape(cell.model_ref), escape(options or "scored as it is"))
    for label in dict.fromkeys(cell.label for cell in methods):
        cells = [cell for cell in methods if cell.label == label]
        seeds = ",".join(str(cell.seed) for cell in cells)
        table.add_row(escape(label), seeds, escape(recipe.student or ""), escape(_needs(kind, cells[0], plan)))
    console.print(table)
    for bench in plan.benchmarks:
        console.print(escape(f"benchmark {bench.name}: {_options(bench.benchmark)}".rstrip(": ")))
    for line in _tuning(recipe):
        console.print(escape(line))
    if absent:
        console.print(escape(f"absent here, needed by a run: {', '.join(absent)}"))
    console.print("ok: the recipe validates and plans")


def _tuning(recipe: Recipe) -> list[str]:
    """What a tune block will search: per tuned row, its space and the trainings it gets."""
    tune = recipe.tune
    if tune is None:
        return []
    rows = tune.methods or [spec.label for spec in recipe.methods]
    lines = [f"tune: {tune.trials} trial(s) per method ({tune.sampler}, seed {tune.seed}) on "
             f"{', '.join(spec.label for spec in tune.benchmarks)}, objective {tune.objective}"]
    for spec in recipe.methods:
        space = search_space(spec, recipe)
        if spec.label not in rows:
            lines.append(f"  {spec.label}: untuned")
            continue
        searched = "; ".join(f"{name} in {choices}" for name, choices in space.items()) or "nothing to search"
        lines.append(f"  {spec.label}: {min(tune.trials, grid_size(space)) if space else 0} training(s) over {searched}")
    return lines


def _options(benchmark) -> str:
    """The options a recipe set (its protocol would read, or download, the benchmark's data)."""
    return ", ".join(f"{field.name}={getattr(benchmark, field.name)}" for field in dataclasses.fields(benchmark)
                     if getattr(benchmark, field.name) != _default(field))


def _default(field: dataclasses.Field):
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _needs(kind, cell, plan) -> str:
    """A method cell's models by role, the signals it draws, the data it reads, and what it continues."""
    models = [f"{role} {ref}" for role, ref in kind.method_models(cell.method).items() if role != "student"]
    signals = list(getattr(cell.method, "needs", ()))
    data = [name.removesuffix("_hash") for name, value in kind.data_key(cell.method).items()
            if name.endswith("_hash") and value is not None]
    parts = [("models: " + ", ".join(models)) if models else "",
             ("signals: " + ", ".join(signals)) if signals else "",
             ("data: " + ", ".join(data)) if data else "",
             f"continues: {plan.cell(cell.starts_from).label}" if cell.starts_from else ""]
    return "; ".join(part for part in parts if part) or "the data alone"
