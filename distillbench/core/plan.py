"""The plan: which cells a recipe asks for, each keyed by a hash of everything that determines its result.

Cells are methods × seeds, plus reference rows (the teacher, the reference
teacher when given, and the student before training). Benchmarks are keyed
separately, so adding a benchmark to a recipe never retrains a cell.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from distillbench.core.errors import UserInputError
from distillbench.core.recipe import (KEY_MARKER, WHEN_SET, ComponentSpec, Recipe, keyed_dump, method_budget,
                                      method_params, stable_hash, start_of, validate_options)
from distillbench.core.registry import BENCHMARKS, KINDS, METHODS


@dataclass(frozen=True)
class Cell:
    label: str  # the leaderboard row this cell contributes to
    kind: str  # "reference" | "method"
    model_ref: str  # reference rows: the model scored; method rows: the student init
    key: str
    method_name: str | None = None
    method: Any = None  # the validated method dataclass
    seed: int | None = None
    starts_from: str | None = None  # key of the cell whose trained student this cell starts from
    options: dict[str, Any] = dataclasses.field(default_factory=dict, hash=False, compare=False)  # a reference row's (its kind's) options
    budget: Any = dataclasses.field(default=None, hash=False, compare=False)  # the Budget it trains with
    tuning: dict[str, Any] | None = dataclasses.field(default=None, hash=False, compare=False)  # core/tune.py

    @property
    def folder(self) -> str:
        return folder_name(self.label, self.seed, self.key)


def folder_name(label: str, seed: int | None, key: str) -> str:
    """A cell's folder: its label made file-safe, its seed and the start of its content key, so a cell
    whose recipe changed never finds (or resumes) the old one's files."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
    return f"{safe}-seed{seed}-{key[:8]}" if seed is not None else f"{safe}-{key[:8]}"


@dataclass(frozen=True)
class BenchmarkRun:
    name: str
    benchmark: Any  # the validated benchmark dataclass
    key: str


@dataclass(frozen=True)
class Plan:
    cells: list[Cell]
    benchmarks: list[BenchmarkRun]

    def rows(self) -> list[str]:
        return list(dict.fromkeys(c.label for c in self.cells))

    def cell(self, key: str) -> Cell:
        return next(c for c in self.cells if c.key == key)


def _options(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def keyed_options(method: Any) -> dict[str, Any]:
    """A method's hyperparameters (or a benchmark's options) as they enter its key: a field marked as added
    later (metadata ``{KEY_MARKER: WHEN_SET}``) only when set to something other than its default, so keys
    made before the field existed stay as they were."""
    options = _options(method)
    for spec in dataclasses.fields(method):
        if spec.metadata.get(KEY_MARKER) == WHEN_SET and options.get(spec.name) == spec.default:
            options.pop(spec.name)
    return options


def make_plan(recipe: Recipe, kind: Any = None, identify: Callable[[str], str] | None = None,
              tuned: dict[str, dict[str, Any]] | None = None) -> Plan:
    """The cells and benchmark runs of `recipe`, keyed with what `kind` (its `StudentKind`, by default a
    fresh one of the recipe's kind) says a result depends on. `identify` replaces the models' fingerprints
    (`--check` plans without building a model). `tuned` maps a method row to its tuning (core/tune.py): the
    row's cells train with the chosen options in place of the recipe entry's, under the same label."""
    tuned = tuned or {}
    kind = kind or KINDS.get(recipe.kind)(recipe, recipe.output_path())
    fingerprints: dict[str, str] = {}

    def fp(ref: str) -> str:
        if ref not in fingerprints:
            fingerprints[ref] = (identify or kind.fingerprint)(ref)
        return fingerprints[ref]

    cells = [Cell(row.label, "reference", row.model_ref,
                  stable_hash({"kind": "reference", "model": fp(row.model_ref), **row.options}), options=row.options)
             for row in kind.reference_rows()]
    entries = [(spec.label, _tuned_entry(spec, tuned.get(spec.label))) for spec in recipe.methods]
    methods = [(spec, validate_options(METHODS.get(spec.name), method_params(spec), spec.name)[0])
               for _, spec in entries]
    labels = {id(spec): label for label, spec in entries}
    keys: dict[tuple[str, int], str] = {}  # (method name, seed) -> key of its first entry in start order
    for spec, method in in_start_order(methods):
        label = labels[id(spec)]
        models = {role: fp(ref) for role, ref in kind.method_models(method).items()}
        data = kind.data_key(method)
        version = getattr(method, "loss_version", 1)
        budget = method_budget(recipe.budget, spec)
        keyed_budget = None if budget is None else keyed_dump(budget)  # a kind may fit without one
        for seed in recipe.seeds:
            start = _start_key(spec, method, seed, keys)
            loss = {"loss_version": version} if version != 1 else {}
            key = stable_hash({"kind": "method", "method": spec.name, "params": keyed_options(method),
                               "seed": seed, "models": models, "data": data, "budget": keyed_budget,
                               "starts_from": start, **loss})
            keys.setdefault((spec.name, seed), key)
            cells.append(Cell(label, "method", recipe.student, key, spec.name, method, seed, start, budget=budget,
                              tuning=tuned.get(label)))
    plan = Plan(cells, benchmark_runs(recipe.benchmarks, kind.benchmark_key()))
    _check_versus(recipe, plan)
    return plan


def _tuned_entry(spec: ComponentSpec, tuning: dict[str, Any] | None) -> ComponentSpec:
    """A method entry with its tuned options (when tuning chose any) in place of the recipe's."""
    if not tuning or tuning.get("chosen") is None:
        return spec
    return ComponentSpec(name=spec.name, params={**spec.params, **tuning["chosen"]})


def _check_versus(recipe: Recipe, plan: Plan) -> None:
    """The row a leaderboard compares every other row with is one of the plan's rows."""
    versus = recipe.leaderboard.versus if recipe.leaderboard else None
    if versus is not None and versus not in plan.rows():
        raise UserInputError(f"leaderboard.versus: no row {versus!r}; rows: {', '.join(plan.rows())}")


def in_start_order(methods: list[tuple[ComponentSpec, Any]]) -> list[tuple[ComponentSpec, Any]]:
    """The recipe's (entry, method) pairs, each after the method whose student it continues (entries that start
    from the init first, in recipe order; then those that continue them, and so on)."""
    names = {spec.name for spec, _ in methods}
    ordered: list[tuple[ComponentSpec, Any]] = []
    pending = list(methods)
    while pending:
        placed = {spec.name for spec, _ in ordered}
        ready = [(spec, method) for spec, method in pending
                 if start_of(spec, type(method)) in placed or start_of(spec, type(method)) not in names]
        if not ready:
            raise UserInputError(f"methods: {', '.join(spec.label for spec, _ in pending)} continue from each "
                                 "other's students")
        ordered += ready
        pending = [pair for pair in pending if pair not in ready]
    return ordered


def benchmark_runs(specs: list[ComponentSpec], keyed_with: dict[str, Any]) -> list[BenchmarkRun]:
    """A recipe's benchmark entries as runs: a benchmark listed once is named plainly; listed with several
    option sets, by its label."""
    names = [spec.name for spec in specs]
    return [benchmark_run(spec.name, spec.params, spec.name if names.count(spec.name) == 1 else spec.label,
                          keyed_with) for spec in specs]


def benchmark_run(name: str, options: dict[str, Any], label: str | None = None,
                  keyed_with: dict[str, Any] | None = None) -> BenchmarkRun:
    """Registered benchmark `name` with `options`, keyed by its options and scorer version (and `keyed_with`)."""
    given, name = name, BENCHMARKS.entry(name).name  # an alias keys and labels as the registered name
    label = name if label in (None, given) else label
    benchmark, problems = validate_options(BENCHMARKS.get(name), options, name)
    if problems:
        raise UserInputError(problems)
    key = stable_hash({"benchmark": name, "options": keyed_options(benchmark), "scorer": benchmark.scorer_version,
                       **(keyed_with or {})})
    return BenchmarkRun(label, benchmark, key)


def _start_key(spec: ComponentSpec, method: Any, seed: int, keys: dict[tuple[str, int], str]) -> str | None:
    """The key of the cell (same seed) whose trained student the entry's cell starts from; None: the init."""
    start = start_of(spec, type(method))
    if start is None:
        return None
    if (start, seed) not in keys:
        raise UserInputError(f"methods: {spec.name} continues from the {start} student; "
                             f"add {start} to the recipe's methods")
    return keys[(start, seed)]
