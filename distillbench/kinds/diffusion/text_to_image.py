"""The text-to-image kind: a diffusion pipeline folder (`sampling.TextToImage`: a UNet, a text encoder, a
scheduler) scored on the images it samples for the image benchmarks' prompts (GenEval, FID, KID, CLIP score).

A row is the teacher sampled with its own settings: the recipe's ``rows`` each give a label, the steps,
the classifier-free guidance, the sampler and the noise seed, which are the row's options
(`Reference.options`: they enter its cell key). A row's cost carries the UNet evaluations per image
(NFE) and the sampling seconds per image, the price a fewer-step sampler or a distilled student cuts.
No method trains a text-to-image student yet: a recipe lists none and needs no budget.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from distillbench.core.kind import Reference, StudentKind, register_kind
from distillbench.core.recipe import _Strict, ReferenceRowsRecipe, set_but_unused, stable_hash
from distillbench.kinds.diffusion.sampling import (SAMPLERS, TextToImage, fingerprint, item_prompt,
                                                       pipeline_problem, resolve, write_images)


class SamplingRow(_Strict):
    """One row of the board: the teacher sampled with these settings."""

    label: str = Field(min_length=1)
    steps: int = Field(gt=0, description="sampling steps")
    guidance: float | None = Field(default=None, description="classifier-free guidance scale (1: none, which "
                                   "halves the NFE); null: the pipeline's default")
    sampler: Literal[SAMPLERS] = "ddim"
    seed: int = Field(default=0, description="image i's initial noise depends on (seed, i) only")


class TextToImageRecipe(ReferenceRowsRecipe):
    teacher: str = Field(description="'pocket:t2i-teacher' or a pipeline folder (with t2i.json)")
    rows: list[SamplingRow] = Field(min_length=1, description="the board's rows: the teacher at these settings")

    @field_validator("teacher")
    @classmethod
    def _pipeline(cls, value: str) -> str:
        problem = pipeline_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("rows")
    @classmethod
    def _distinct_labels(cls, value: list[SamplingRow]) -> list[SamplingRow]:
        labels = [row.label for row in value]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"row labels must be distinct: {', '.join(repeated)} is repeated")
        return value


class Sampler:
    """A pipeline at one row's settings, as the image benchmarks' `predict` uses it: it writes the images
    of a prompt list into its folder once (benchmarks with the same prompts and settings score one set of
    images) and adds up what sampling them cost. A benchmark may name its own steps, guidance or sampler
    (`GeneratedImageOutputs`): they replace the row's for its images, so one trained student is scored at
    several step counts."""

    def __init__(self, pipeline: TextToImage, steps: int, guidance: float | None, sampler: str, seed: int):
        self.pipeline, self.seed = pipeline, seed
        self.settings = {"steps": steps, "guidance": guidance, "sampler": sampler}
        self.folder: Path | None = None  # the cell's folder, set while its benchmarks are scored
        self._made: dict[tuple, list[str]] = {}
        self._cost: dict[tuple, dict[str, float]] = {}  # per (steps, guidance, sampler): nfe, seconds, images

    def to(self, device) -> "Sampler":
        self.pipeline.to(device)
        return self

    def images(self, items: list[dict], batch_size: int, **overrides) -> list[str]:
        """The path of each item's image, sampled at the row's settings with `overrides` (steps, guidance,
        sampler; None keeps the row's). Items that carry a ``negative`` prompt (pocket-negative's) are steered away
        from it with the pipeline's ``nasa_scale`` (``t2i.json``; 0, none, unless a NASA row set it)."""
        settings = {**self.settings, **{name: value for name, value in overrides.items() if value is not None}}
        prompts = tuple((item["id"], item_prompt(item), item.get("negative")) for item in items)
        key = (prompts, tuple(settings.items()))
        if key not in self._made:
            negatives = [negative for _, _, negative in prompts]
            nasa_scale = self.pipeline.config.get("nasa_scale", 0.0) if all(negatives) else 0.0
            images, cost = self.pipeline.generate([prompt for _, prompt, _ in prompts], settings["steps"],
                                                  settings["guidance"], settings["sampler"], self.seed, batch_size,
                                                  negatives, nasa_scale)
            plain = settings == self.settings and not any(negatives)  # named as before negatives and overrides
            name = stable_hash(tuple(p[:2] for p in prompts) if plain else key)[:8]
            self._made[key] = write_images(items, images, self.folder / f"images-{name}")
            spent = self._cost.setdefault(tuple(settings.values()), {"nfe": cost.nfe, "seconds": 0.0, "images": 0})
            spent["seconds"] += cost.seconds_per_image * len(items)
            spent["images"] += len(items)
        return self._made[key]

    def cost(self) -> dict[str, Any]:
        """NFE per image and sampling seconds per image over every image made (none: nothing sampled); with
        several settings, one pair per step count (``nfe@<steps>``, ``sampling_seconds_per_image@<steps>``)."""
        def pair(spent: dict, suffix: str = "") -> dict[str, Any]:
            return {f"nfe{suffix}": spent["nfe"],
                    f"sampling_seconds_per_image{suffix}": round(spent["seconds"] / spent["images"], 4)}

        if len(self._cost) == 1:
            return pair(next(iter(self._cost.values())))
        merged: dict[str, Any] = {}
        for (steps, guidance, sampler), spent in self._cost.items():
            merged.update(pair(spent, f"@{steps}"))
        return merged


@register_kind("text-to-image", summary="diffusion pipelines (UNet, text encoder, scheduler) sampled at each row's "
               "steps, guidance and sampler; scored on the images they make, with NFE and seconds per image")
class TextToImageKind(StudentKind):
    recipe_model = TextToImageRecipe
    benchmark_families = frozenset({"image"})

    def __init__(self, recipe: TextToImageRecipe, out: Path):
        super().__init__(recipe, out)
        self._pipelines: dict[str, TextToImage] = {}

    @classmethod
    def recipe_problems(cls, recipe: TextToImageRecipe) -> list[str]:
        sampled = "not used: the rows sample the teacher (no method trains a text-to-image student yet)"
        return set_but_unused(recipe, {"reference_teacher": sampled, "student": sampled})

    def reference_rows(self) -> list[Reference]:
        return [Reference(row.label, self.recipe.teacher, row.model_dump(exclude={"label"})) for row in self.recipe.rows]

    def fingerprint(self, ref: str) -> str:
        return fingerprint(resolve(ref))

    def load(self, ref: str, seed: int = 0, options: dict[str, Any] | None = None) -> tuple[Sampler, None]:
        """(a `Sampler` of the pipeline at the row's options, None); the pipeline is loaded once per run."""
        if ref not in self._pipelines:
            self._pipelines[ref] = TextToImage.load(ref)
        return Sampler(self._pipelines[ref], **(options or {})), None

    @contextlib.contextmanager
    def scoring(self, cell, folder: Path, model: Sampler, processor):
        model.folder = folder  # the images lie beside the cell's outputs, which name them
        yield

    def scoring_cost(self, model: Sampler) -> dict[str, Any]:
        return model.cost()
