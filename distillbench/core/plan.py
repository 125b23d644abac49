"""The plan: which cells a recipe asks for, each keyed by a hash of everything that determines its result.

Cells are methods × seeds, plus reference rows (the teacher, the reference
teacher when given, and the student before training). Benchmarks are keyed
separately, so adding a benchmark to a recipe never retrains a cell.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from distillbench.kinds.text_lm.data import data_fingerprint
from distillbench.core.errors import UserInputError
from distillbench.core.models import fingerprint
from distillbench.core.recipe import Recipe, stable_hash, validate_options
from distillbench.core.registry import BENCHMARKS, METHODS


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


# Recipe fields added after cell keys were first computed: they enter a key only when set to something
# other than their default, so the cells of existing run directories keep their keys (and stay cached).
ADDED_FIELDS = {"budget": ("optimizer", "momentum", "weight_decay", "lr_schedule", "lr_milestones", "lr_decay",
                           "loss_chunk_size"),
                "data": ("augment", "labeled_per_class")}
# The same for the fields methods gained (their hyperparameters are keyed by `_method_options`).
ADDED_METHOD_FIELDS = {"adpo": ("kl_threshold", "kl_window")}
# Fields that never change a cell's result: a run resumed from any checkpoint equals an uninterrupted one.
NOT_KEYED = {"budget": ("checkpoint_every",), "data": ()}
# Optional data files, keyed only for the methods that read them.
OPTIONAL_DATA = {"preferences": lambda method: method.data_kind == "preference",
                 "ranked": lambda method: method.data_kind == "ranked",
                 "validation": lambda method: "validation" in method.needs}


def _keyed(model, section: str) -> dict[str, Any]:
    dump = model.model_dump(mode="json")
    for name in NOT_KEYED[section]:
        dump.pop(name)
    fields = type(model).model_fields
    for name in ADDED_FIELDS[section]:
        default = fields[name].get_default(call_default_factory=True)
        if dump.get(name) == (list(default) if isinstance(default, list) else default):
            dump.pop(name)
    return dump


def _data_read_by(method: Any, data: dict[str, Any]) -> dict[str, Any]:
    """The keyed data section less the optional files `method` does not read (their paths and hashes)."""
    unread = {name for field, reads in OPTIONAL_DATA.items() if not reads(method) for name in (field, f"{field}_hash")}
    return {name: value for name, value in data.items() if name not in unread}


def _method_options(name: str, method: Any) -> dict[str, Any]:
    options = _options(method)
    defaults = {f.name: f.default for f in dataclasses.fields(method)}
    for added in ADDED_METHOD_FIELDS.get(name, ()):
        if options.get(added) == defaults[added]:
            options.pop(added)
    return options


def make_plan(recipe: Recipe) -> Plan:
    fingerprints: dict[str, str] = {}

    def fp(ref: str) -> str:
        if ref not in fingerprints:
            fingerprints[ref] = fingerprint(ref)
        return fingerprints[ref]

    cells = []
    references = [("teacher", recipe.teacher), ("reference-teacher", recipe.reference_teacher),
                  ("student-init", recipe.student)]
    for label, ref in references:
        # A freshly initialised classifier (arch:) has nothing to score before training.
        if ref is not None and not ref.startswith("arch:"):
            cells.append(Cell(label, "reference", ref, stable_hash({"kind": "reference", "model": fp(ref)})))
    data = {**_keyed(recipe.data, "data"), "source_hash": data_fingerprint(recipe.data.source),
            "preferences_hash": data_fingerprint(recipe.data.preferences),
            "ranked_hash": data_fingerprint(recipe.data.ranked), "validation_hash": data_fingerprint(recipe.data.validation)}
    budget = _keyed(recipe.budget, "budget")
    methods = [(spec, validate_options(METHODS.get(spec.name), spec.params, spec.name)[0]) for spec in recipe.methods]
    keys: dict[tuple[str, int], str] = {}  # (method name, seed) -> key of its first recipe entry
    # Methods that continue from another method's student come after it.
    for spec, method in sorted(methods, key=lambda pair: pair[1].starts_from is not None):
        models = {"student": fp(recipe.student)}
        if method.uses_teacher:
            models["teacher"] = fp(recipe.teacher)
        if "reference_teacher_logits" in method.needs:
            models["reference_teacher"] = fp(recipe.reference_teacher)
        for ref in method.source_teachers:
            models[f"source:{ref}"] = fp(ref)
        for seed in recipe.seeds:
            start = _start_key(method, spec.name, seed, keys)
            loss = {"loss_version": method.loss_version} if method.loss_version != 1 else {}
            key = stable_hash({"kind": "method", "method": spec.name, "params": _method_options(spec.name, method),
                               "seed": seed, "models": models, "data": _data_read_by(method, data), "budget": budget,
                               "starts_from": start, **loss})
            keys.setdefault((spec.name, seed), key)
            cells.append(Cell(spec.label, "method", recipe.student, key, spec.name, method, seed, start))
    names = [spec.name for spec in recipe.benchmarks]
    # A benchmark listed once is named plainly; listed with several option sets, by its label.
    # Outputs of another generation backend are other outputs: keyed apart (the default keeps the old keys).
    generation = {} if recipe.generation.backend == "hf" else {"generation": recipe.generation.model_dump(mode="json")}
    benchmarks = [benchmark_run(spec.name, spec.params, spec.name if names.count(spec.name) == 1 else spec.label,
                                generation) for spec in recipe.benchmarks]
    return Plan(cells, benchmarks)


def benchmark_run(name: str, options: dict[str, Any], label: str | None = None,
                  keyed_with: dict[str, Any] | None = None) -> BenchmarkRun:
    """Registered benchmark `name` with `options`, keyed by its options and scorer version (and `keyed_with`)."""
    given, name = name, BENCHMARKS.entry(name).name  # an alias keys and labels as the registered name
    label = name if label in (None, given) else label
    benchmark, problems = validate_options(BENCHMARKS.get(name), options, name)
    if problems:
        raise UserInputError(problems)
    key = stable_hash({"benchmark": name, "options": _options(benchmark), "scorer": benchmark.scorer_version,
                       **(keyed_with or {})})
    return BenchmarkRun(label, benchmark, key)


def _start_key(method: Any, name: str, seed: int, keys: dict[tuple[str, int], str]) -> str | None:
    if method.starts_from is None:
        return None
    if (method.starts_from, seed) not in keys:
        raise UserInputError(f"methods: {name} continues from the {method.starts_from} student; "
                             f"add {method.starts_from} to the recipe's methods")
    return keys[(method.starts_from, seed)]
