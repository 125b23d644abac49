"""The diffusion kind: a few-step student distilled from a frozen diffusion teacher (issue #24).

So far its models are point models (`points.PointDenoiser` with its DDPM schedule and its world, the 2-D
pocket world's format); image pipelines come next. The student starts from a model folder (usually the
teacher's own, as DMD2 and SiD initialise the generator from the teacher), the teacher is frozen, and a
method may train more around the student (a fake-score critic) through `Method.training_module`.

A step's batch is the prompts of the step (class labels drawn from the world's classes; a share of them the
empty prompt) and the generator's input noise, both a pure function of (seed, step), so a resumed cell trains
on exactly what an uninterrupted one would. Benchmarks sample the trained student with their own sampler
settings (steps, guidance), so one student is scored at 1, 2 and 4 steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers import DDPMScheduler
from pydantic import BaseModel, ConfigDict, Field

from distillbench.core.kind import StudentKind, Training, register_kind
from distillbench.core.models import tree_fingerprint
from distillbench.core.recipe import Recipe, model_refs_checked, set_but_unused
from distillbench.core.train import Batching
from distillbench.kinds.diffusion.points import (Mixture, is_point_model, load_point_model, model_directory,
                                                 save_point_model)


class DiffusionData(BaseModel):
    """What a diffusion student trains on: the prompts of each step (no images: the teacher is the data)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompts: int = Field(default=4096, gt=0, description="the pool the steps draw their batches from: samples of "
                         "the world (seed data_seed), each a data point and its class (its prompt)")
    null_fraction: float = Field(default=0.0, ge=0, le=1, description="share of a batch's prompts replaced by the "
                                 "empty prompt (an unconditional student: 1)")
    data_seed: int = Field(default=0, description="the seed of the prompt pool")


class DiffusionRecipe(Recipe):
    teacher: str = Field(description="a point model folder (denoiser/, scheduler/, world.json) or "
                         "pocket:gaussians2d-teacher")
    student: str = Field(description="the model the student starts from: usually the teacher itself")
    data: DiffusionData = Field(default_factory=DiffusionData)

    _models = model_refs_checked("teacher", "student")


class PromptBatching(Batching):
    """A step's prompts (drawn from the pool like any examples), the generator's input noise, and the pool's
    data points for the methods that distil on data (consistency distillation noises real samples)."""

    unit = "samples"

    def __init__(self, prompts: torch.Tensor, clean: torch.Tensor, null_class: int, null_fraction: float,
                 scheduler: DDPMScheduler, world: Mixture | None = None):
        self.prompts, self.clean, self.null_class, self.null_fraction = prompts, clean, null_class, null_fraction
        self.dimension = clean.shape[1]
        self.scheduler = scheduler  # the teacher's training schedule: methods noise and denoise with it
        self.world = world  # the known target: a pocket reward (Flash-DMD's) scores samples under its density

    def lengths(self, examples) -> tuple[int, ...]:
        return (1,) * len(self.prompts)

    def collate(self, examples, indices: list[int], seed: int, step: int, part: int, device) -> dict[str, Any]:
        generator = torch.Generator().manual_seed((seed * 1_000_003 + step) * 101 + part)
        labels = self.prompts[indices].clone()
        labels[torch.rand(len(indices), generator=generator) < self.null_fraction] = self.null_class
        noise = torch.randn((len(indices), self.dimension), generator=generator)
        return {"class_labels": labels.to(device), "noise": noise.to(device), "step": step, "scheduler": self.scheduler,
                "clean": self.clean[indices].to(device),
                "generator": torch.Generator().manual_seed((seed * 1_000_003 + step) * 101 + part + 50)}

    def add_signals(self, batch: dict, method, frozen: dict) -> int:
        """The frozen teacher itself: a method queries it at its own re-noised samples (`method.teacher_forwards`
        says how many evaluations the batch costs)."""
        batch["teacher"] = frozen["teacher"]
        return method.teacher_forwards(batch)

    def count(self, batch: dict) -> int:
        return len(batch["class_labels"])

    def weight_count(self, batch: dict, normalize_by: str) -> int:
        return len(batch["class_labels"])


@register_kind("diffusion", summary="few-step diffusion students distilled from a frozen diffusion teacher "
               "(point models of the 2-D pocket world so far); scored on their samples")
class Diffusion(StudentKind):
    recipe_model = DiffusionRecipe
    data_kinds = frozenset({"diffusion"})
    benchmark_families = frozenset({"diffusion-points"})

    @classmethod
    def recipe_problems(cls, recipe: DiffusionRecipe) -> list[str]:
        return set_but_unused(recipe, {"reference_teacher": "the teacher is the only model a student learns from",
                                       "budget.max_length": "tokens per example: for language models",
                                       "budget.teacher_top_k": "the top-k logit cache is for language models"})

    def reference_rows(self):
        """The teacher, and the student's init unless it is the teacher itself (the usual start)."""
        return [row for row in super().reference_rows()
                if not (row.label == "student-init" and row.model_ref == self.recipe.teacher)]

    def fingerprint(self, ref: str) -> str:
        return tree_fingerprint(model_directory(ref))[:16]

    def data_key(self, method: Any) -> dict[str, Any]:
        return self.recipe.data.model_dump(mode="json")

    def load(self, ref: str, seed: int = 0, options: dict[str, Any] | None = None):
        directory = model_directory(ref)
        if not is_point_model(directory):
            raise ValueError(f"{ref}: not a point model folder (denoiser/, scheduler/, world.json)")
        return load_point_model(directory)

    def save(self, model, processor, directory: Path) -> None:
        save_point_model(model, processor, directory)

    def training(self, cell, init_ref: str, processor) -> Training:
        data, world = self.recipe.data, processor.world
        points, modes = world.sample(data.prompts, seed=data.data_seed)
        prompts = torch.as_tensor(world.classes)[torch.as_tensor(modes)]
        clean = torch.as_tensor(points / world.scale, dtype=torch.float32)  # in model space
        batching = PromptBatching(prompts, clean, world.class_count, data.null_fraction,
                                  DDPMScheduler.from_config(processor.scheduler_config), world)
        return Training(prompts, batching, {"teacher": self.frozen_model(self.recipe.teacher)})
