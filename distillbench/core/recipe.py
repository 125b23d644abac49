"""The recipe: a YAML file validated into typed objects.

An invalid recipe raises UserInputError with one line per problem, each naming
the field path (``methods[2].beta: must be > 0``); nothing is written before
validation has passed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from distillbench.core.errors import UserInputError
from distillbench.core.models import validate_model_ref
from distillbench.core.registry import BENCHMARKS, KINDS, METHODS
from distillbench.core.validation import problems_from, unknown_field

DEFAULT_RECIPE = Path("recipes/pocket/llm.yaml")


# Key markers on recipe fields (pydantic `json_schema_extra`): a field added after cells were first keyed
# enters a key only when set to something other than its default, so existing run directories keep their
# keys (and stay cached); a field that can never change a result (how often to checkpoint) never does.
KEY_MARKER = "key"
WHEN_SET, NEVER = "when-set", "never"
# Fields holding a file or folder path: relative ones are read relative to the recipe's folder.
PATH_MARKER = "path"
# The options of a method entry that no method declares: the harness's, not the loss's.
# `starts_from` names another method of the recipe whose student (same seed) the entry continues, in place of
# the class's `starts_from`, so a baseline can start where a method that continues another's student starts
# (its control).
START = "starts_from"
# `budget` sets the method's own optimiser settings over the recipe's budget (its tuned learning rate, say);
# steps and batch size stay the budget's, the same for every method.
BUDGET = "budget"
HARNESS_OPTIONS = (START, BUDGET)
PER_METHOD_BUDGET = ("learning_rate", "weight_decay", "momentum", "warmup_steps", "max_grad_norm")


def when_set(**field: Any) -> Any:
    """A pydantic Field that enters cell keys only when set to something other than its default."""
    return Field(json_schema_extra={KEY_MARKER: WHEN_SET}, **field)


def path_field(**field: Any) -> Any:
    """A pydantic Field naming a file or folder (relative to the recipe's folder when relative)."""
    return Field(json_schema_extra={PATH_MARKER: True}, **field)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def model_refs_checked(*fields: str) -> Any:
    """A pydantic validator (assign it in a recipe model's body) that checks each of `fields`, when set, names
    a model: a pocket zoo name, an ``arch:`` architecture, a hub id or an existing folder."""

    def check(cls, value: str | None) -> str | None:
        if value is not None:
            validate_model_ref(value)
        return value

    return field_validator(*fields)(check)


class Budget(_Strict):
    """The compute budget every method gets, identical across rows."""

    steps: int = Field(gt=0, description="optimizer steps per method cell")
    batch_size: int = Field(gt=0, description="examples per optimizer step (before accumulation split)")
    learning_rate: float = Field(gt=0)
    max_length: int | None = Field(default=None, gt=0, description="tokens per example, prompt and response "
                                   "together (language models; image classifiers leave it out)")
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    gradient_accumulation: int = Field(default=1, gt=0)
    warmup_steps: int = Field(default=0, ge=0)
    checkpoint_every: int = Field(default=100, gt=0, description="steps between atomic checkpoints",
                                  json_schema_extra={KEY_MARKER: NEVER})
    max_grad_norm: float | None = Field(default=1.0, gt=0, description="gradient clipping; null: none (the CIFAR recipe)")
    group_by_length: bool = Field(default=False, description="batch examples of similar length (less padding, "
                                  "faster steps; on pocket-math it made batches type-homogeneous and slowed learning)")
    teacher_top_k: int | None = Field(default=None, gt=0, description="None: dense teacher logits from the live "
                                      "teacher; k: the teacher's top-k log-probs and remainder from a cache built "
                                      "once per (teacher, data, k) and shared by every cell of the run directory")
    loss_chunk_size: int | None = when_set(default=None, gt=0, description="None: losses and log-probs from the full "
                                        "[tokens × vocab] logits; n: from the student's hidden states and LM head in "
                                        "chunks of n tokens, never holding the full logits (methods that support it)")
    optimizer: Literal["adamw", "sgd"] = when_set(default="adamw", description="adamw, or sgd with momentum "
                                               "(the CIFAR recipe)")
    momentum: float = when_set(default=0.9, ge=0, lt=1, description="sgd only")
    weight_decay: float = when_set(default=0.0, ge=0)
    lr_schedule: Literal["cosine", "multistep", "constant"] = when_set(
        default="cosine", description="after warm-up: cosine decay to 0, ×lr_decay at each of lr_milestones, or constant")
    lr_milestones: list[int] = when_set(default_factory=list, description="multistep: the steps where the rate decays")
    lr_decay: float = when_set(default=0.1, gt=0, le=1, description="multistep: the factor at each milestone")

    @field_validator("lr_milestones")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        if any(m <= 0 for m in value) or value != sorted(set(value)):
            raise ValueError("milestones must be positive, increasing steps")
        return value

    @model_validator(mode="after")
    def _schedule_fits(self) -> "Budget":
        """Settings that would be silently ignored, or never reached, are refused."""
        if self.lr_milestones and self.lr_schedule != "multistep":
            raise ValueError(f"lr_milestones are used by lr_schedule: multistep only (this is {self.lr_schedule})")
        if self.lr_milestones and self.lr_milestones[-1] >= self.steps:
            raise ValueError(f"lr_milestones: {self.lr_milestones[-1]} is not before the last step ({self.steps} steps)")
        if self.warmup_steps >= self.steps > 1:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) leaves no step at the full rate ({self.steps} steps)")
        return self


class ComponentSpec(_Strict):
    """A method or benchmark: its registered name and its options."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        if not self.params:
            return self.name
        inner = ",".join(f"{k}={v}" for k, v in sorted(_flat(self.params).items()))
        return f"{self.name}[{inner}]"


def _flat(options: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested options as dotted names: {'budget': {'learning_rate': 0.001}} → {'budget.learning_rate': 0.001}."""
    flat: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _component(value: Any) -> Any:
    """Accept `name` or `{name: ..., option: value, ...}`."""
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, dict) and "name" in value:
        return {"name": value["name"], "params": {k: v for k, v in value.items() if k != "name"}}
    return value


class LeaderboardSpec(_Strict):
    """How the run's Markdown leaderboard presents its rows (it never changes a result)."""

    description: str | None = Field(default=None, description="a paragraph under the title: what the rows are")
    headline: dict[str, str] = Field(default_factory=dict, description="a first table of the figures the board "
                                     "is read by: '<benchmark>/<metric>' or 'cost.<field>' → column title")
    versus: str | None = Field(default=None, description="a row label: every other row's paired differences "
                               "against it are appended (as `distillbench leaderboard --versus` prints them)")


class TuneSpec(_Strict):
    """An equal tuning budget: every tuned method gets `trials` trainings (seed `seed`) over the search space
    its method file declares (`Method.search_space`) and the learning rates below, scored on `benchmarks` (a
    dev split); the trial with the best `objective` is then trained with the recipe's seeds and scored on
    its test benchmarks. The search is Optuna's (core/tune.py)."""

    trials: int = Field(gt=0, description="trainings per tuned method (a grid smaller than this is run whole)")
    sampler: Literal["tpe", "grid"] = Field(default="tpe", description="Optuna's TPE sampler, or its grid sampler "
                                            "(points in a seeded random order)")
    seed: int = Field(default=0, description="the training seed of every trial, and the sampler's seed")
    learning_rate: list[float] = Field(min_length=1, description="the learning rates searched for every method "
                                       "(the budget's own is what an untuned method trains with)")
    objective: str | dict[str, float] = Field(description="'<benchmark>/<metric>' of `benchmarks` to optimise, "
                                              "or a mapping of such metrics to positive weights (a weighted sum; "
                                              "all of one direction)")
    benchmarks: list[ComponentSpec] = Field(min_length=1, description="the benchmarks trials are scored on: "
                                            "their dev split, never the test split the board reports")
    methods: list[str] | None = Field(default=None, description="row labels to tune (default: every method); the "
                                      "others are untuned rows, labelled so")
    record: str | None = Field(default=None, description="a tuning record (the `tuning.json` a run writes into its "
                               "output directory): trials found in it, by cell key, take its dev objective and "
                               "train seconds instead of training, so a sweep can be tuned once and trained "
                               "elsewhere; a trial whose key is not in it trains as usual")

    @field_validator("benchmarks", mode="before")
    @classmethod
    def _components(cls, value: Any) -> Any:
        return [_component(v) for v in value] if isinstance(value, list) else value

    @field_validator("learning_rate")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        if any(rate <= 0 for rate in value) or len(set(value)) != len(value):
            raise ValueError("distinct positive learning rates")
        return value

    @field_validator("objective")
    @classmethod
    def _weights(cls, value: str | dict[str, float]) -> str | dict[str, float]:
        if isinstance(value, dict) and (not value or any(weight <= 0 for weight in value.values())):
            raise ValueError("one or more metrics with positive weights")
        return value

    def weights(self) -> dict[str, float]:
        """The objective as metric → weight."""
        return {self.objective: 1.0} if isinstance(self.objective, str) else dict(self.objective)


class Recipe(_Strict):
    """The sections every recipe has; a kind of student subclasses it (`StudentKind.recipe_model`) with its
    own ``data`` section and whatever other fields its students need, and may make models required (or the
    budget optional, when its `StudentKind.fit` does not run the core train loop)."""

    name: str = Field(min_length=1)
    kind: str = Field(description="the kind of student (`distillbench list kinds`)")
    teacher: str | None = None
    reference_teacher: str | None = None
    student: str | None = None
    data: Any = None
    budget: Budget
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    methods: list[ComponentSpec] = Field(min_length=1)
    benchmarks: list[ComponentSpec] = Field(min_length=1)
    output_dir: str | None = None
    # Run code shipped with a hub model (its modeling files). Off: weights are data, code is not.
    trust_remote_code: bool = False
    leaderboard: LeaderboardSpec | None = None
    tune: TuneSpec | None = None

    @field_validator("methods", "benchmarks", mode="before")
    @classmethod
    def _components(cls, value: Any) -> Any:
        return [_component(v) for v in value] if isinstance(value, list) else value

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("seeds must be distinct")
        return value

    def output_path(self) -> Path:
        return Path(self.output_dir or f"runs/{self.name}")

    def canonical(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def content_hash(self) -> str:
        return stable_hash(self.canonical())


class ReferenceRowsRecipe(Recipe):
    """The recipe of a kind that may train nothing: its reference rows (a sampler at several settings, the
    models of a zoo) are the board, so it may list no methods and then needs no budget."""

    budget: Budget | None = None
    methods: list[ComponentSpec] = Field(default_factory=list)

    @field_validator("methods")
    @classmethod
    def _budget_for_methods(cls, value: list[ComponentSpec], info: ValidationInfo) -> list[ComponentSpec]:
        if value and "budget" in info.data and info.data["budget"] is None:
            raise ValueError("methods train within a budget: add budget (steps, batch_size, learning_rate)")
        return value


def stable_hash(obj: Any) -> str:
    """A short content hash of JSON-serialisable data (key order does not matter)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def keyed_dump(section: BaseModel) -> dict[str, Any]:
    """A recipe section as it enters cell keys: its fields less those its key markers leave out."""
    dump = section.model_dump(mode="json")
    for name, info in type(section).model_fields.items():
        marker = (info.json_schema_extra or {}).get(KEY_MARKER) if isinstance(info.json_schema_extra, dict) else None
        default = info.get_default(call_default_factory=True)
        if marker == NEVER or (marker == WHEN_SET and dump.get(name) == (list(default) if isinstance(default, list)
                                                                          else default)):
            dump.pop(name)
    return dump


def validate_options(cls: type, params: dict[str, Any], path: str) -> tuple[Any | None, list[str]]:
    """Build the dataclass `cls` from `params`, validated by its type annotations."""
    known = [f.name for f in dataclasses.fields(cls)]
    extra = [k for k in params if k not in known]
    problems = []
    for key in extra:
        problems.append(f"{path}.{key}: {unknown_field(key, known)}")
    try:
        instance = TypeAdapter(cls).validate_python({k: v for k, v in params.items() if k in known})
    except ValidationError as exc:
        return None, problems + problems_from(exc, prefix=path)
    if hasattr(instance, "check"):
        problems += [f"{path}.{line}" for line in instance.check()]
    return (instance if not problems else None), problems


def _check_components(recipe: Recipe, kind: type) -> list[str]:
    """Every method and benchmark (the tune block's too) is registered, takes its options, and suits the
    recipe's kind."""
    sections = [("methods", recipe.methods, METHODS), ("benchmarks", recipe.benchmarks, BENCHMARKS)]
    if recipe.tune is not None:
        sections.append(("tune.benchmarks", recipe.tune.benchmarks, BENCHMARKS))
    problems = []
    for section, specs, registry in sections:
        for index, spec in enumerate(specs):
            path = f"{section}[{index}]"
            if spec.name not in registry:
                problems.append(f"{path}.name: {registry.unknown_message(spec.name)}")
                continue
            params = method_params(spec) if registry is METHODS else spec.params
            problems += validate_options(registry.get(spec.name), params, path)[1]
            problems += _kind_mismatch(path, spec.name, registry, kind)
        labels = [s.label for s in specs]
        for label in {l for l in labels if labels.count(l) > 1}:
            problems.append(f"{section}: {label!r} is listed twice")
    return problems + _check_continuations(recipe) + _check_method_budget(recipe) + _check_tune(recipe)


def _kind_mismatch(path: str, name: str, registry, kind: type) -> list[str]:
    """A method that trains another kind of student, or a benchmark that scores one."""
    if registry is METHODS:
        data_kind = getattr(registry.get(name), "data_kind", None)
        if data_kind not in kind.data_kinds:
            return [f"{path}: {name} trains {_kinds_for(lambda k: data_kind in k.data_kinds)}, but this recipe's "
                    f"kind is {kind.name}"]
        return []
    family = registry.entry(name).family
    if family not in kind.benchmark_families:
        return [f"{path}: {name} scores {_kinds_for(lambda k: family in k.benchmark_families)}, but this recipe's "
                f"kind is {kind.name}"]
    return []


def _kinds_for(suits) -> str:
    """'text-lm students', naming the kinds that would take a component."""
    names = [entry.name for entry in KINDS.entries() if suits(entry.obj)]
    return f"{' or '.join(names)} students" if names else "no kind of student here"


def method_params(spec: ComponentSpec) -> dict[str, Any]:
    """A method entry's hyperparameters: its options less the harness's (`starts_from`, `budget`)."""
    return {key: value for key, value in spec.params.items() if key not in HARNESS_OPTIONS}


def method_budget(budget: Budget | None, spec: ComponentSpec) -> Budget | None:
    """The budget a method entry trains with: the recipe's, with the entry's own optimiser settings."""
    own = spec.params.get(BUDGET)
    return budget if budget is None or not own else Budget.model_validate({**budget.model_dump(), **own})


def _check_method_budget(recipe: Recipe) -> list[str]:
    """A method's own `budget` sets optimiser settings only, to values the budget takes."""
    problems = []
    for index, spec in enumerate(recipe.methods):
        own, path = spec.params.get(BUDGET), f"methods[{index}].{BUDGET}"
        if own is None:
            continue
        if not isinstance(own, dict) or recipe.budget is None:
            problems.append(f"{path}: a mapping of optimiser settings over the recipe's budget")
            continue
        shared = [key for key in own if key not in PER_METHOD_BUDGET]
        problems += [f"{path}.{key}: the same for every method (a method may set "
                     f"{', '.join(PER_METHOD_BUDGET)})" for key in shared]
        if not shared:
            try:
                method_budget(recipe.budget, spec)
            except ValidationError as exc:
                problems += problems_from(exc, prefix=path)
    return problems


def _budget_unused(recipe: Recipe, kind: type) -> list[str]:
    """Per-method budgets (and tuning, which sets them) on a kind that trains every cell with its own settings."""
    if getattr(kind, "per_method_budget", True):
        return []
    why = f"{kind.name} students train with the kind's own settings, not a per-method budget"
    own = [f"methods[{i}].{BUDGET}: {why}" for i, spec in enumerate(recipe.methods) if BUDGET in spec.params]
    return own + ([f"tune: {why}"] if recipe.tune else [])


def _check_tune(recipe: Recipe) -> list[str]:
    """The tune block names benchmarks of the recipe's kind, metrics of its own benchmarks, and method rows."""
    tune = recipe.tune
    if tune is None:
        return []
    problems = []
    labels = [spec.label for spec in tune.benchmarks]
    for metric in tune.weights():
        benchmark = metric.split("/", 1)[0]
        if "/" not in metric or benchmark not in labels + [spec.name for spec in tune.benchmarks]:
            problems.append(f"tune.objective: {metric!r} is not '<benchmark>/<metric>' of tune.benchmarks "
                            f"({', '.join(labels)})")
    rows = [spec.label for spec in recipe.methods]
    problems += [f"tune.methods: no method row {label!r}; rows: {', '.join(rows)}"
                 for label in tune.methods or [] if label not in rows]
    if recipe.budget is None:
        problems.append("tune: tuning searches the budget's learning rate: add budget")
    return problems


def start_of(spec: ComponentSpec, cls: type) -> str | None:
    """The method whose student a method entry continues: the recipe's `starts_from`, else its class's."""
    return spec.params.get(START, getattr(cls, "starts_from", None))


def _check_continuations(recipe: Recipe) -> list[str]:
    """A method that continues another method's student names another method of the recipe."""
    names = [spec.name for spec in recipe.methods]
    problems = []
    for index, spec in enumerate(recipe.methods):
        start = start_of(spec, METHODS.get(spec.name)) if spec.name in METHODS else None
        if start is not None and (not isinstance(start, str) or start == spec.name):
            problems.append(f"methods[{index}].{START}: the name of another method of the recipe")
        elif start is not None and start not in names:
            problems.append(f"methods[{index}]: {spec.name} continues from the {start} student; add {start} to "
                            "the methods")
    return problems


def set_but_unused(recipe: BaseModel, reasons: dict[str, str]) -> list[str]:
    """'field: why' for each dotted field in `reasons` that `recipe` sets (not None) though its kind does not use
    it: a setting silently ignored is refused instead."""
    problems = []
    for path, why in reasons.items():
        value: Any = recipe
        for part in path.split("."):
            value = getattr(value, part, None)
        if value is not None:
            problems.append(f"{path}: {why}")
    return problems


def option(spec: ComponentSpec, cls: type, name: str) -> Any:
    """A method option as the recipe sets it, else the dataclass default (None when it has no such field)."""
    defaults = {f.name: f.default for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
    return spec.params.get(name, defaults.get(name))


def _path_fields(model: type[BaseModel]) -> list[str]:
    return [name for name, info in model.model_fields.items()
            if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get(PATH_MARKER)]


def _resolve_paths(raw: dict[str, Any], base: Path, model: type[Recipe]) -> dict[str, Any]:
    """Relative file paths in a recipe (data files, local model directories) are relative to the recipe."""

    def resolve(value: Any) -> Any:
        if not isinstance(value, str) or value.startswith(("pocket:", "hf:", "arch:")) or Path(value).is_absolute():
            return value
        candidate = os.path.normpath(base / value)
        return candidate if os.path.exists(candidate) else value

    raw = dict(raw)
    for key in ("teacher", "reference_teacher", "student"):
        if key in raw:
            raw[key] = resolve(raw[key])
    data_model = model.model_fields["data"].annotation
    if isinstance(raw.get("data"), dict) and isinstance(data_model, type) and issubclass(data_model, BaseModel):
        paths = _path_fields(data_model)
        raw["data"] = {k: resolve(v) if k in paths else v for k, v in raw["data"].items()}
    return raw


def recipe_kind(raw: dict[str, Any], source: str) -> type:
    """The kind class a raw recipe names."""
    name = raw.get("kind")
    if name is None:
        raise UserInputError(f"{source}: kind: required: the kind of student (known: {', '.join(KINDS.names())})")
    if not isinstance(name, str) or name not in KINDS:
        raise UserInputError(f"{source}: kind: {KINDS.unknown_message(str(name))}")
    return KINDS.get(name)


def parse_recipe(raw: Any, source: str = "recipe", base: Path | None = None) -> Recipe:
    if not isinstance(raw, dict):
        raise UserInputError(f"{source}: expected a mapping of recipe fields at the top level")
    kind = recipe_kind(raw, source)
    model = kind.recipe_model
    if base is not None:
        raw = _resolve_paths(raw, base, model)
    try:
        recipe = model.model_validate(raw)
    except ValidationError as exc:
        raise UserInputError([f"{source}: {line}" for line in problems_from(exc, model=model)]) from None
    problems = _check_components(recipe, kind) + kind.recipe_problems(recipe) + _budget_unused(recipe, kind)
    if problems:
        raise UserInputError([f"{source}: {line}" for line in problems])
    return recipe


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    return parse_recipe(read_recipe_file(path), str(path), base=path.parent)


def read_recipe_file(path: Path) -> Any:
    """A recipe file's YAML, not yet validated (a report varies it before `parse_recipe`)."""
    if not path.is_file():
        raise UserInputError(f"{path}: recipe file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserInputError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserInputError(f"{path}:{where} invalid YAML ({getattr(exc, 'problem', exc)})") from None
    return raw
