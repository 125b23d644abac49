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
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from distillbench.core.errors import UserInputError
from distillbench.core.models import validate_model_ref
from distillbench.core.registry import BENCHMARKS, METHODS
from distillbench.core.validation import problems_from, unknown_field

DEFAULT_RECIPE = Path("recipes/pocket/llm.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    checkpoint_every: int = Field(default=100, gt=0, description="steps between atomic checkpoints")
    max_grad_norm: float | None = Field(default=1.0, gt=0, description="gradient clipping; null: none (the CIFAR recipe)")
    group_by_length: bool = Field(default=False, description="batch examples of similar length (less padding, "
                                  "faster steps; on pocket-math it made batches type-homogeneous and slowed learning)")
    teacher_top_k: int | None = Field(default=None, gt=0, description="None: dense teacher logits from the live "
                                      "teacher; k: the teacher's top-k log-probs and remainder from a cache built "
                                      "once per (teacher, data, k) and shared by every cell of the run directory")
    loss_chunk_size: int | None = Field(default=None, gt=0, description="None: losses and log-probs from the full "
                                        "[tokens × vocab] logits; n: from the student's hidden states and LM head in "
                                        "chunks of n tokens, never holding the full logits (methods that support it)")
    optimizer: Literal["adamw", "sgd"] = Field(default="adamw", description="adamw, or sgd with momentum "
                                               "(the CIFAR recipe)")
    momentum: float = Field(default=0.9, ge=0, lt=1, description="sgd only")
    weight_decay: float = Field(default=0.0, ge=0)
    lr_schedule: Literal["cosine", "multistep", "constant"] = Field(
        default="cosine", description="after warm-up: cosine decay to 0, ×lr_decay at each of lr_milestones, or constant")
    lr_milestones: list[int] = Field(default_factory=list, description="multistep: the steps where the rate decays")
    lr_decay: float = Field(default=0.1, gt=0, le=1, description="multistep: the factor at each milestone")

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


class DataSpec(_Strict):
    """Training data: SFT records (problem / solution) and, for preference methods, preference pairs; or an
    image classification dataset for classifier distillation."""

    source: str = Field(description="'pocket:math' or a JSONL file of {problem, solution} records; or images: "
                        "'pocket:shapes-many|shape|binary' or a CIFAR-100 folder in torchvision's layout")
    split: str = "train"
    size: int | None = Field(default=None, gt=0, description="number of SFT examples (pocket: generated)")
    noise_fraction: float = Field(default=0.0, ge=0, le=1,
                                  description="pocket sources: share of solutions with realistic noise")
    conversations: int = Field(default=0, ge=0, description="pocket:math only: two-turn pocket-mtbench-style "
                               "chats mixed into the SFT data (disjoint from the evaluation questions)")
    chatty_fraction: float = Field(default=0.0, ge=0, le=1, description="pocket:math only: share of the chats' "
                                   "second answers written in a chatty, unboxed style (a habit of one SFT source)")
    validation: str | None = Field(default=None, description="JSONL file of {problem, solution} records for "
                                   "methods that watch a validation loss (distillm); pocket:math uses 200 dev problems")
    preferences: str | None = Field(default=None, description="'pocket:math-preference' or a JSONL file of "
                                    "{prompt, chosen, rejected} records (chat messages or strings)")

    ranked: str | None = Field(default=None, description="'pocket:math-ranked' or a JSONL file of {prompt, "
                               "responses: [{content, score}, ...]} for listwise and curriculum methods")
    augment: Literal["none", "flip", "crop-flip"] = Field(default="none", description="images: training "
                                                          "augmentation, a function of (seed, step)")
    labeled_per_class: int | None = Field(default=None, gt=0, description="images: few-shot semi-supervised "
                                          "data: only the first k training examples of each class keep their "
                                          "label; each step draws batch_size labeled and batch_size unlabeled")

    @field_validator("source", "preferences", "validation", "ranked")
    @classmethod
    def _known_source(cls, value: str | None, info) -> str | None:
        if value is None:
            return value
        if info.field_name == "source" and (value.startswith("pocket:shapes") or Path(value).is_dir()):
            from distillbench.kinds.image_classifier.images import image_source_problem

            problem = image_source_problem(value)
            if problem:
                raise ValueError(problem)
        elif value.startswith("pocket:"):
            from distillbench.kinds.text_lm.data import POCKET_SOURCES

            if value not in POCKET_SOURCES:
                known = POCKET_SOURCES + (_pocket_image_sources() if info.field_name == "source" else ())
                raise ValueError(f"unknown pocket dataset; known: {', '.join(known)}")
        elif not Path(value).is_file():
            raise ValueError(f"file not found: {value}")
        return value

    @property
    def images(self) -> bool:
        """Whether this is an image classification dataset (classify methods) rather than text."""
        from distillbench.kinds.image_classifier.images import is_image_source

        return is_image_source(self.source)


def _pocket_image_sources() -> tuple[str, ...]:
    from distillbench.pocket.shapes_classifiers import SOURCES

    return SOURCES


class ComponentSpec(_Strict):
    """A method or benchmark: its registered name and its options."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        if not self.params:
            return self.name
        inner = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.name}[{inner}]"


def _component(value: Any) -> Any:
    """Accept `name` or `{name: ..., option: value, ...}`."""
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, dict) and "name" in value:
        return {"name": value["name"], "params": {k: v for k, v in value.items() if k != "name"}}
    return value


class GenerationSpec(_Strict):
    """How benchmarks generate with the model under evaluation."""

    backend: Literal["hf", "vllm"] = Field(default="hf", description="transformers' generate (batched, KV cache, "
                                           "length-sorted), or a vLLM engine on the same weights (GPU)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(default="auto", description="vLLM only")
    gpu_memory_utilization: float = Field(default=0.5, gt=0, le=1, description="vLLM only: the share of GPU "
                                          "memory the engine takes (the transformers model stays loaded beside it)")


class Recipe(_Strict):
    name: str = Field(min_length=1)
    teacher: str
    reference_teacher: str | None = None
    student: str
    data: DataSpec
    budget: Budget
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    methods: list[ComponentSpec] = Field(min_length=1)
    benchmarks: list[ComponentSpec] = Field(min_length=1)
    output_dir: str | None = None
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    # Run code shipped with a hub model (its modeling files). Off: weights are data, code is not.
    trust_remote_code: bool = False

    @field_validator("methods", "benchmarks", mode="before")
    @classmethod
    def _components(cls, value: Any) -> Any:
        return [_component(v) for v in value] if isinstance(value, list) else value

    @field_validator("teacher", "reference_teacher", "student")
    @classmethod
    def _model_ref(cls, value: str | None) -> str | None:
        if value is not None:
            validate_model_ref(value)
        return value

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


def stable_hash(obj: Any) -> str:
    """A short content hash of JSON-serialisable data (key order does not matter)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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


def _check_components(recipe: Recipe) -> list[str]:
    problems = []
    for kind, registry, specs in (("methods", METHODS, recipe.methods), ("benchmarks", BENCHMARKS, recipe.benchmarks)):
        for index, spec in enumerate(specs):
            path = f"{kind}[{index}]"
            if spec.name not in registry:
                problems.append(f"{path}.name: {registry.unknown_message(spec.name)}")
                continue
            problems += validate_options(registry.get(spec.name), spec.params, path)[1]
        labels = [s.label for s in specs]
        for label in {l for l in labels if labels.count(l) > 1}:
            problems.append(f"{kind}: {label!r} is listed twice")
    return problems + _check_method_needs(recipe)


# Data kinds the generic runner does not train or score, and the driver that does (on the same train loop).
OWN_DRIVERS = {"tabular": "distillbench.kinds.tabular.driver", "retrieval": "distillbench.kinds.retrieval.driver"}


def _check_modality(recipe: Recipe) -> list[str]:
    """Image data goes with classify methods, classifier models and classify benchmarks; text with the rest."""
    from distillbench.kinds.image_classifier.classifiers import is_classifier_ref

    images, problems = recipe.data.images, []
    data = f"data.source {recipe.data.source} is {'an image classification dataset' if images else 'text'}"
    elsewhere = set()  # components of the data kinds that have their own driver (OWN_DRIVERS)
    for section, registry in (("methods", METHODS), ("benchmarks", BENCHMARKS)):
        for index, spec in enumerate(getattr(recipe, section)):
            kind = getattr(registry.get(spec.name), "data_kind", None) if spec.name in registry else None
            if kind in OWN_DRIVERS:
                elsewhere.add(spec.name)
                problems.append(f"{section}[{index}]: {spec.name} is for {kind} models, which this runner does not "
                                f"train: use python -m {OWN_DRIVERS[kind]} RECIPE")
    for index, spec in enumerate(recipe.methods):
        if spec.name in elsewhere:
            continue
        if spec.name in METHODS and (METHODS.get(spec.name).data_kind == "images") != images:
            problems.append(f"methods[{index}]: {spec.name} trains "
                            f"{'a language model' if images else 'an image classifier'}, but {data}")
    for index, spec in enumerate(recipe.benchmarks):
        if spec.name in elsewhere:
            continue
        if spec.name in BENCHMARKS and (BENCHMARKS.entry(spec.name).family == "classify") != images:
            problems.append(f"benchmarks[{index}]: {spec.name} scores "
                            f"{'language models' if images else 'image classifiers'}, but {data}")
    for field in ("teacher", "reference_teacher", "student"):
        ref = getattr(recipe, field)
        if ref is None:
            continue
        if images and not is_classifier_ref(ref):
            problems.append(f"{field}: {ref} is not an image classifier (pocket:shapes-teacher-<task>, arch:<name>, "
                            "or a folder with classifier.json)")
        elif not images and is_classifier_ref(ref):
            problems.append(f"{field}: {ref} is an image classifier, but {data}")
    if images and recipe.budget.teacher_top_k is not None:
        problems.append("budget.teacher_top_k: the top-k logit cache is for language models; image teachers run live")
    if not images and recipe.budget.max_length is None:
        problems.append("budget.max_length: required for language models (tokens per example)")
    if recipe.reference_teacher is not None and images:
        problems.append("reference_teacher: not used by image classifiers")
    if recipe.data.labeled_per_class is not None:
        if not images:
            problems.append("data.labeled_per_class: for image classification data only")
        for index, spec in enumerate(recipe.methods):
            if spec.name in METHODS and not getattr(METHODS.get(spec.name), "supports_unlabeled", True):
                problems.append(f"methods[{index}]: {spec.name} needs every example's label; it cannot train on "
                                "semi-supervised data (data.labeled_per_class)")
    return problems


def _check_method_needs(recipe: Recipe) -> list[str]:
    """What the recipe's methods need from the rest of the recipe."""
    methods = [(index, s.name, METHODS.get(s.name)) for index, s in enumerate(recipe.methods) if s.name in METHODS]
    names = [name for _, name, _ in methods]
    problems = _check_modality(recipe)
    for field, missing, test in (
            ("data.preferences", recipe.data.preferences is None, lambda cls: cls.data_kind == "preference"),
            ("data.ranked", recipe.data.ranked is None, lambda cls: cls.data_kind == "ranked"),
            ("reference_teacher", recipe.reference_teacher is None,
             lambda cls: "reference_teacher_logits" in cls.needs),
            ("data.validation", recipe.data.validation is None and not recipe.data.source.startswith("pocket:"),
             lambda cls: "validation" in cls.needs)):
        needing = [name for _, name, cls in methods if test(cls)]
        if missing and needing:
            problems.append(f"{field}: required by {', '.join(dict.fromkeys(needing))}")
    chunking = sorted(name for name in METHODS.names() if METHODS.get(name).supports_chunked_loss)
    for index, name, cls in methods:
        if recipe.budget.loss_chunk_size is not None and not cls.supports_chunked_loss:
            problems.append(f"methods[{index}]: {name} computes its loss from the full logits; "
                            f"budget.loss_chunk_size is for {', '.join(chunking)}")
        if cls.starts_from is not None and cls.starts_from not in names:
            problems.append(f"methods[{index}]: {name} continues from the {cls.starts_from} student; "
                            f"add {cls.starts_from} to the methods")
        # DCKD and ADPA read the teacher's top_k tokens; a smaller cache would fill the rest with ties
        cached, top_k = recipe.budget.teacher_top_k, _option(recipe.methods[index], cls, "top_k")
        if cached is not None and isinstance(top_k, int) and top_k > cached:
            problems.append(f"methods[{index}]: {name} reads the teacher's top {top_k} tokens, but "
                            f"budget.teacher_top_k caches {cached}: raise it or lower top_k")
    return problems


def _option(spec: ComponentSpec, cls: type, name: str) -> Any:
    """A method option as the recipe sets it, else the dataclass default (None when it has no such field)."""
    defaults = {f.name: f.default for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
    return spec.params.get(name, defaults.get(name))


def _resolve_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative file paths in a recipe (data files, local model directories) are relative to the recipe."""

    def resolve(value: Any) -> Any:
        if not isinstance(value, str) or value.startswith(("pocket:", "hf:")) or Path(value).is_absolute():
            return value
        candidate = os.path.normpath(base / value)
        return candidate if os.path.exists(candidate) else value

    raw = dict(raw)
    for key in ("teacher", "reference_teacher", "student"):
        if key in raw:
            raw[key] = resolve(raw[key])
    if isinstance(raw.get("data"), dict):
        raw["data"] = {k: resolve(v) if k in ("source", "preferences", "validation", "ranked") else v
                       for k, v in raw["data"].items()}
    return raw


def parse_recipe(raw: Any, source: str = "recipe", base: Path | None = None) -> Recipe:
    if not isinstance(raw, dict):
        raise UserInputError(f"{source}: expected a mapping of recipe fields at the top level")
    if base is not None:
        raw = _resolve_paths(raw, base)
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        raise UserInputError([f"{source}: {line}" for line in problems_from(exc, model=Recipe)]) from None
    problems = _check_components(recipe)
    if problems:
        raise UserInputError([f"{source}: {line}" for line in problems])
    return recipe


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
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
    return parse_recipe(raw, str(path), base=path.parent)
