"""The tabular kind: synthetic-data generators (`fair-latent`) fitted on the pocket-fair world's train rows
(`distillbench/pocket/fair_tabular.py`, read through `data.py`), saved as ``generator.json`` + ``model.safetensors``
(`generators.py`), scored by what a classifier trained on their synthetic rows does on real test rows
(``fair-synthetic``: utility, demographic parity, marginal fidelity).

Its recipe's ``data`` section (`PocketFairWorld`) is the world's seed and train size. A tabular recipe names
no teacher or student (a method's generator starts from nothing, and any teacher it distils is fitted inside
its cell) and no budget: a method fits with its own options (fair-latent: ``teacher_steps``,
``student_steps``, ``batch_size``, ``learning_rate``), not with the core train loop. A row is one method
with its options, over the recipe's seeds.

A tabular method has ``fit(data, seed, log) -> generator`` (a function of the data and the seed),
``training_cost(data)`` (its steps, rows, teacher forwards and trained parameters) and
``empty_generator(rows)`` (the shape its saved weights load into).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from pydantic import Field

from distillbench.core.kind import StudentKind, register_kind
from distillbench.core.recipe import Budget, Recipe, _Strict, set_but_unused
from distillbench.core.train import TrainResult, peak_memory_mb
from distillbench.kinds.tabular.data import TabularData, world_rows
from distillbench.kinds.tabular.generators import FittedGenerator, load_generator, save_generator


class PocketFairWorld(_Strict):
    """The pocket-fair world's train split the generators are fitted on."""

    seed: int = Field(default=0, ge=0, description="the world's seed (its train and test splits are independent "
                      "streams of it; fair-synthetic's world_seed picks the test rows)")
    train_size: int | None = Field(default=None, gt=0, description="real train rows (default 4,000)")


class TabularRecipe(Recipe):
    data: PocketFairWorld
    budget: Budget | None = None  # refused (`recipe_problems`): each method fits with its own options


@register_kind("tabular", summary="synthetic tabular data generators (fair-latent) fitted on the pocket-fair "
               "world; scored by a classifier trained on their rows: utility, demographic parity, fidelity")
class Tabular(StudentKind):
    recipe_model = TabularRecipe
    data_kinds = frozenset({"tabular"})
    benchmark_families = frozenset({"tabular"})
    per_method_budget = False  # a method's own options set how it trains

    def __init__(self, recipe: TabularRecipe, out: Path):
        super().__init__(recipe, out)
        self._data: TabularData | None = None

    @classmethod
    def recipe_problems(cls, recipe: TabularRecipe) -> list[str]:
        fitted = "not used: a tabular generator is fitted from the data alone"
        return set_but_unused(recipe, {"teacher": fitted, "reference_teacher": fitted, "student": fitted,
                                       "budget": "not used: a tabular method fits with its own options (fair-latent: "
                                                 "teacher_steps, student_steps, batch_size, learning_rate)"})

    def data(self) -> TabularData:
        """The world's train rows, generated once per run."""
        if self._data is None:
            self._data = world_rows("train", self.recipe.data.train_size, self.recipe.data.seed)
        return self._data

    # the cell key ------------------------------------------------------------------------------
    def method_models(self, method: Any) -> dict[str, str]:
        return {}  # a generator depends on the data, its method's options and the seed alone

    # models ------------------------------------------------------------------------------------
    def load(self, ref: str | None, seed: int = 0, options: dict[str, Any] | None = None):
        """(generator, None): a saved generator; none for a method cell (`ref` None: its generator is fitted
        from nothing)."""
        return (None if ref is None else load_generator(Path(ref))), None

    def save(self, model: FittedGenerator, processor, directory: Path) -> None:
        save_generator(model, directory)

    # training ----------------------------------------------------------------------------------
    def fit(self, cell, model, processor, init_ref, folder: Path, description: str):
        """The method's own fit on the world's train rows (not the core train loop: a tabular method has its
        own stages, steps and optimizers); its loss terms go to ``train_log.jsonl``."""
        method, data = cell.method, self.data()
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with open(folder / "train_log.jsonl", "w") as log:
            generator = method.fit(data, cell.seed, log=lambda record: log.write(json.dumps(record) + "\n"))
        cost = method.training_cost(data)
        result = TrainResult(steps=cost["steps"], wall_seconds=time.perf_counter() - started,
                             teacher_forwards=cost["teacher_forwards"], trained_parameters=cost["trained_parameters"],
                             peak_memory_mb=peak_memory_mb(torch.device("cpu")), tokens=cost["rows"], unit="rows")
        return FittedGenerator(method, generator), result, {}

    # scoring -----------------------------------------------------------------------------------
    def device_model(self, model: FittedGenerator) -> FittedGenerator:
        return model  # it samples with a CPU torch.Generator: it stays on the CPU, and its draws on any machine
