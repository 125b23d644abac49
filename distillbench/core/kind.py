"""The kind-of-student protocol: what the runner asks of a kind, and nothing about any one kind.

A kind of student (a language model, an image classifier, a dual encoder, ...) is a plug-in: one
folder under ``distillbench/kinds/`` with a class that subclasses `StudentKind` and registers in
`KINDS`. A recipe names its kind (``kind: <name>``); the core looks the class up and, from then on,
asks it for everything that depends on what a student is:

* its recipe: `recipe_model` (a `Recipe` subclass with the kind's own ``data`` section and fields),
  `recipe_problems` (what types cannot say), the method data kinds and benchmark families it takes;
* the cell key: `reference_rows`, `fingerprint`, `method_models`, `data_key`, `benchmark_key`;
* its models: `load` and `save`, in their library's own format;
* training: `preflight`, `training` (the examples, the batching that makes each step's batches,
  on-policy and generated data included, and the frozen models), `fit` (the core train loop, unless
  the kind trains something else, such as a distilled data set);
* scoring: `scoring` (a context the benchmarks predict in, such as a vLLM engine), whatever the
  benchmarks' `predict(model, processor, items, batch_size)` receives, and `scoring_cost` (what
  predicting cost, when it belongs in the row's cost: a sampler's evaluations per image).

One instance serves one run: it may cache the run's data and frozen models across cells.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from distillbench.core.models import fingerprint
from distillbench.core.recipe import Recipe
from distillbench.core.registry import KINDS
from distillbench.core.train import TrainResult, train


@dataclass(frozen=True)
class Reference:
    """A reference row: a model scored as it is (the teacher, the student before training), with the
    options that make its outputs (a sampler's steps and guidance, say; they enter its cell key)."""

    label: str
    model_ref: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Training:
    """What one method cell trains on: the examples, the batching that turns them into each step's
    batches (with the signals the method needs), the frozen models by role, and cost figures the kind
    adds to the row (a signal cache's size, say)."""

    examples: Any
    batching: Any
    frozen: dict[str, Any] = field(default_factory=dict)
    extra_cost: dict[str, Any] = field(default_factory=dict)


class StudentKind(ABC):
    """Base class of a kind of student; the defaults suit a kind whose models the core train loop fits."""

    name: ClassVar[str] = ""  # set by the registry from the registered name
    recipe_model: ClassVar[type[Recipe]] = Recipe
    # The `data_kind`s of the methods this kind trains, and the families of the benchmarks it scores.
    data_kinds: ClassVar[frozenset[str]] = frozenset()
    benchmark_families: ClassVar[frozenset[str]] = frozenset()
    # Whether `fit` trains each method cell with its own budget (`Cell.budget`: the recipe's, with the method
    # entry's optimiser settings), so methods may set their own learning rate and the recipe may tune them.
    per_method_budget: ClassVar[bool] = True

    def __init__(self, recipe: Recipe, out: Path):
        self.recipe = recipe
        self.out = out
        self._frozen: dict[str, Any] = {}

    # the recipe --------------------------------------------------------------------------------
    @classmethod
    def recipe_problems(cls, recipe: Recipe) -> list[str]:
        """Constraints between recipe fields, methods and benchmarks that types cannot say: one
        'field: problem' line each."""
        return []

    # the cell key ------------------------------------------------------------------------------
    def reference_rows(self) -> list[Reference]:
        """The models scored as they are, before any method trains."""
        recipe = self.recipe
        rows = [("teacher", recipe.teacher), ("reference-teacher", recipe.reference_teacher),
                ("student-init", recipe.student)]
        return [Reference(label, ref) for label, ref in rows if ref is not None]

    def fingerprint(self, ref: str) -> str:
        """A model's identity in cell keys (a hash of what it computes, or a hub id@revision)."""
        return fingerprint(ref)

    def method_models(self, method: Any) -> dict[str, str]:
        """The models a method cell's result depends on, by role (their fingerprints enter its key)."""
        return {"student": self.recipe.student}

    def data_key(self, method: Any) -> dict[str, Any]:
        """What of the recipe's data section (and its files' hashes) a method cell's result depends on."""
        return self.recipe.data.model_dump(mode="json")

    def benchmark_key(self) -> dict[str, Any]:
        """What besides a benchmark's options changes its outputs for every cell (a generation backend)."""
        return {}

    # models ------------------------------------------------------------------------------------
    @abstractmethod
    def load(self, ref: str, seed: int = 0, options: dict[str, Any] | None = None) -> tuple[Any, Any]:
        """(model, processor) for a model reference: processor is what benchmarks need beside the model
        (a tokenizer), or None."""

    def save(self, model: Any, processor: Any, directory: Path) -> None:
        """Write a trained model (and its processor) into `directory`, in its library's own format. A kind
        whose recipes take no method (reference rows only) never gets here: its recipe check refuses methods."""
        raise TypeError(f"{self.name} students are scored as they are; none is trained, so none is saved")

    def frozen_model(self, ref: str) -> Any:
        """A teacher-side model, loaded once per run and shared by every cell (it is never trained)."""
        if ref not in self._frozen:
            self._frozen[ref] = self.load(ref)[0]
        return self._frozen[ref]

    def load_trained(self, directory: Path, seed: int = 0) -> tuple[Any, Any]:
        """A model `save` wrote."""
        return self.load(str(directory), seed)

    # training ----------------------------------------------------------------------------------
    def preflight(self, plan: Any) -> None:
        """Check what the plan needs (data files, compatible models) before anything is written."""

    def offline_problems(self, plan: Any) -> list[str]:
        """What `distillbench run --check` can find wrong without building, downloading or training a model
        (data files that do not read, local models that disagree): one line per problem."""
        return []

    def training(self, cell: Any, init_ref: str, processor: Any) -> Training:
        """The examples, batching and frozen models of a method cell (kinds whose recipes take methods)."""
        raise TypeError(f"{self.name} students are scored as they are; no method trains them")

    def fit(self, cell: Any, model: Any, processor: Any, init_ref: str, folder: Path, description: str
            ) -> tuple[Any, TrainResult, dict[str, Any]]:
        """Train a method cell's model: the core train loop on `training`'s inputs. Returns the model to
        save and score, the loop's result and the kind's extra cost figures."""
        inputs = self.training(cell, init_ref, processor)
        result = train(method=cell.method, student=model, examples=inputs.examples, budget=cell.budget,
                       seed=cell.seed, checkpoint_dir=folder / "checkpoint", batching=inputs.batching,
                       frozen=inputs.frozen, log_path=folder / "train_log.jsonl", description=description)
        shutil.rmtree(folder / "checkpoint", ignore_errors=True)  # the saved model supersedes it
        return (result.model if result.model is not None else model), result, inputs.extra_cost

    # scoring -----------------------------------------------------------------------------------
    def scoring(self, cell: Any, folder: Path, model: Any, processor: Any):
        """A context the cell's benchmarks predict in (default: none)."""
        return contextlib.nullcontext()

    def scoring_cost(self, model: Any) -> dict[str, Any]:
        """Cost figures the model measured while the cell's benchmarks predicted (a sampler's evaluations
        and seconds per image), added to its row's cost (default: none)."""
        return {}

    def device_model(self, model: Any) -> Any:
        """The model on the device benchmarks run it on."""
        return model.to("cuda" if torch.cuda.is_available() else "cpu")


def register_kind(name: str, *, summary: str = ""):
    """Register a `StudentKind` subclass under `name` (the value of a recipe's ``kind``)."""

    def decorator(cls: type[StudentKind]) -> type[StudentKind]:
        cls.name = name
        return KINDS.register(name, family="kind", summary=summary)(cls)

    return decorator
