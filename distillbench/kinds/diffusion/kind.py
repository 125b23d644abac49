"""The diffusion kind: a few-step student distilled from a frozen diffusion teacher (issue #24).

Its models are point models (`points.PointDenoiser` with its DDPM schedule and its world, the 2-D pocket
world's format) and text-to-image pipelines (`images.PromptedUNet`: a diffusers UNet on a frozen text
encoder, saved as a Stable Diffusion pipeline folder). The student starts from a model folder (usually the
teacher's own, as DMD2 and SiD initialise the generator from the teacher), the teacher is frozen, and a
method may train more around the student (a fake-score critic) through `Method.training_module`.

A step's batch is the prompts of the step (class labels drawn from the world's classes, or token ids of
captions from the data source; a share of them the empty prompt) and the generator's input noise, both a
pure function of (seed, step), so a resumed cell trains on exactly what an uninterrupted one would.
Benchmarks sample the trained student with their own sampler settings (steps, guidance), so one student is
scored at 1, 2 and 4 steps: the points benchmarks sample a point model, the image benchmarks a pipeline
(through the text-to-image kind's `Sampler`, with NFE and seconds per image as cost columns).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DDPMScheduler
from pydantic import BaseModel, ConfigDict, Field, field_validator

from distillbench.core.errors import UserInputError
from distillbench.core.inputs import ABSENT_FINGERPRINT, absent_allowed, input_absent
from distillbench.core.jsonl import read_jsonl
from distillbench.core.kind import StudentKind, Training, register_kind
from distillbench.core.models import parse_model_ref, tree_fingerprint
from distillbench.core.recipe import Recipe, model_refs_checked, path_field, set_but_unused
from distillbench.core.registry import POCKET_DATA
from distillbench.core.train import Batching
from distillbench.kinds.diffusion.images import ImagePipeline, PromptedUNet, load_image_pipeline, save_image_pipeline
from distillbench.kinds.diffusion.points import (Mixture, is_point_model, load_point_model, model_directory,
                                                 save_point_model)
from distillbench.kinds.diffusion.sampling import TextToImage, is_pipeline_folder, resolve
from distillbench.kinds.diffusion.text_to_image import Sampler


IMAGE_SOURCES = "text-to-image"  # the POCKET_DATA family of image students' prompt pools


def image_sources() -> list[str]:
    return [entry.name for entry in POCKET_DATA.entries() if entry.family == IMAGE_SOURCES]


def read_prompt_images(path: Path, count: int, size: int) -> tuple[list[str], np.ndarray]:
    """The first `count` records of a JSONL file of {prompt, image}: the prompts, and the images (paths relative
    to the file) centre-cropped to a square and resized (PIL bicubic) to `size`, uint8 (count, size, size, 3)."""
    from PIL import Image

    records = read_jsonl(path, required=("prompt", "image"))[:count]
    images = []
    for record in records:
        with Image.open(path.parent / record["image"]) as image:
            image = image.convert("RGB")
            side = min(image.size)
            left, top = (image.width - side) // 2, (image.height - side) // 2
            images.append(np.asarray(image.crop((left, top, left + side, top + side)).resize((size, size),
                                                                                              Image.BICUBIC)))
    return [record["prompt"] for record in records], np.stack(images)


def pool_fingerprint(path: Path, count: int) -> str:
    """sha256 over a {prompt, image} JSONL file and the image files its first `count` records name (hashed once
    per process while no file's size or modification time changes: every method's cell key asks for it)."""
    records = read_jsonl(path, required=("prompt", "image"))[:count]
    files = [path, *(path.parent / record["image"] for record in records)]
    return _files_hash(tuple((str(file), file.stat().st_mtime_ns, file.stat().st_size) for file in files))


@functools.lru_cache(maxsize=8)
def _files_hash(stamps: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for name, _, _ in stamps:
        digest.update(hashlib.sha256(Path(name).read_bytes()).digest())
    return digest.hexdigest()[:16]


def model_folder(ref: str) -> Path:
    """The local folder of a model reference: a hub pipeline fetched (`sampling.resolve`), a pocket model built on
    first use, or the path itself."""
    return resolve(ref) if parse_model_ref(ref).backend == "hf" else model_directory(ref)


class DiffusionData(BaseModel):
    """What a diffusion student trains on: the prompts of each step (no images: the teacher is the data)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompts: int = Field(default=4096, gt=0, description="the pool the steps draw their batches from: samples of "
                         "the world (seed data_seed), each a data point and its class (its prompt)")
    null_fraction: float = Field(default=0.0, ge=0, le=1, description="share of a batch's prompts replaced by the "
                                 "empty prompt (an unconditional student: 1)")
    data_seed: int = Field(default=0, description="the seed of the prompt pool")
    source: str | None = path_field(default=None, description="image students: where the prompt pool (captions "
                                    "and their images) comes from, a registered source of family text-to-image "
                                    "(pocket:shapes-scenes) or a JSONL file of {prompt, image} records (image: a "
                                    "path relative to the file); point students draw theirs from the model's world")

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str | None) -> str | None:
        if value is None or value.startswith("pocket:"):
            if value is not None and value not in image_sources():
                raise ValueError(f"not a pocket prompt pool with images; known: {', '.join(image_sources())}")
            return value
        if not Path(value).is_file() and not absent_allowed(value):
            raise ValueError(f"file not found: {value}")
        return value


class DiffusionRecipe(Recipe):
    teacher: str = Field(description="a point model folder (denoiser/, scheduler/, world.json), a text-to-image "
                         "pipeline folder (unet/, text_encoder/, tokenizer/, scheduler/, t2i.json) or a pocket "
                         "model (pocket:gaussians2d-teacher, pocket:t2i-teacher)")
    student: str = Field(description="the model the student starts from: usually the teacher itself")
    data: DiffusionData = Field(default_factory=DiffusionData)

    _models = model_refs_checked("teacher", "student")


class PromptBatching(Batching):
    """A step's prompts (drawn from the pool like any examples), the generator's input noise, and the pool's
    data points for the methods that distil on data (consistency distillation noises real samples)."""

    unit = "samples"

    def __init__(self, prompts: torch.Tensor, clean: torch.Tensor, null_class: int | torch.Tensor,
                 null_fraction: float, scheduler: DDPMScheduler, world: Mixture | None = None):
        # a prompt is a class label (point models) or a row of token ids (pipelines); `null_class` is the empty one
        self.prompts, self.clean, self.null_class, self.null_fraction = prompts, clean, null_class, null_fraction
        self.sample_shape = tuple(clean.shape[1:])  # a point's coordinates, or an image's (channels, height, width)
        self.scheduler = scheduler  # the teacher's training schedule: methods noise and denoise with it
        self.world = world  # the known target: a pocket reward (Flash-DMD's) scores samples under its density

    def lengths(self, examples) -> tuple[int, ...]:
        return (1,) * len(self.prompts)

    def collate(self, examples, indices: list[int], seed: int, step: int, part: int, device) -> dict[str, Any]:
        generator = torch.Generator().manual_seed((seed * 1_000_003 + step) * 101 + part)
        labels = self.prompts[indices].clone()
        labels[torch.rand(len(indices), generator=generator) < self.null_fraction] = self.null_class
        noise = torch.randn((len(indices), *self.sample_shape), generator=generator)
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
               "(point models of the 2-D pocket world, text-to-image pipelines); scored on their samples")
class Diffusion(StudentKind):
    recipe_model = DiffusionRecipe
    data_kinds = frozenset({"diffusion"})
    benchmark_families = frozenset({"diffusion-points", "image"})

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
        if parse_model_ref(ref).backend == "hf":
            return super().fingerprint(ref)  # id@revision: --check plans without fetching it
        return tree_fingerprint(model_folder(ref))[:16]

    def preflight(self, plan: Any) -> None:
        """An image teacher needs a prompt source of family text-to-image; a point teacher draws from its world."""
        source = self.recipe.data.source
        if not is_pipeline_folder(model_folder(self.recipe.teacher)):
            if source is not None:
                raise UserInputError([f"data.source: set but unused: {self.recipe.teacher} is a point model, "
                                      "whose prompts come from its world"])
            return
        if source is None:
            raise UserInputError([f"data.source: image students need a prompt pool with images: one of "
                                  f"{', '.join(image_sources())}, or a JSONL file of {{prompt, image}} records"])

    def data_key(self, method: Any) -> dict[str, Any]:
        keyed = self.recipe.data.model_dump(mode="json", exclude_none=True)  # no source: as keyed before it existed
        source = self.recipe.data.source
        if source is not None and not source.startswith("pocket:"):  # a pocket pool is its generator: its name
            keyed["source_hash"] = ABSENT_FINGERPRINT if input_absent(source) else pool_fingerprint(
                Path(source), self.recipe.data.prompts)
        return keyed

    def load(self, ref: str, seed: int = 0, options: dict[str, Any] | None = None):
        directory = model_folder(ref)
        if is_pipeline_folder(directory):
            return load_image_pipeline(directory)
        if not is_point_model(directory):
            raise ValueError(f"{ref}: neither a point model folder (denoiser/, scheduler/, world.json) nor a "
                             "text-to-image pipeline folder (unet/, text_encoder/, tokenizer/, scheduler/, and "
                             "t2i.json or model_index.json)")
        return load_point_model(directory)

    def save(self, model, processor, directory: Path) -> None:
        if isinstance(model, PromptedUNet):
            save_image_pipeline(model, processor, directory)
        else:
            save_point_model(model, processor, directory)

    def training(self, cell, init_ref: str, processor) -> Training:
        if isinstance(processor, ImagePipeline):
            prompts, clean, null_prompt = self._image_pool(processor)
            batching = PromptBatching(prompts, clean, null_prompt, self.recipe.data.null_fraction,
                                      DDPMScheduler.from_config(processor.scheduler_config))
            return Training(prompts, batching, {"teacher": self.frozen_model(self.recipe.teacher)})
        data, world = self.recipe.data, processor.world
        points, modes = world.sample(data.prompts, seed=data.data_seed)
        prompts = torch.as_tensor(world.classes)[torch.as_tensor(modes)]
        clean = torch.as_tensor(points / world.scale, dtype=torch.float32)  # in model space
        batching = PromptBatching(prompts, clean, world.class_count, data.null_fraction,
                                  DDPMScheduler.from_config(processor.scheduler_config), world)
        return Training(prompts, batching, {"teacher": self.frozen_model(self.recipe.teacher)})

    def _image_pool(self, pipeline: ImagePipeline) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(the pool's prompts as token ids, its images in the UNet's space, the empty prompt's ids)."""
        data, size = self.recipe.data, pipeline.settings["image_size"]
        if data.source.startswith("pocket:"):
            texts, images = POCKET_DATA.entry(data.source).obj(data.prompts, data.data_seed, size)
        else:
            texts, images = read_prompt_images(Path(data.source), data.prompts, size)
        return pipeline.prompt_ids(texts), pipeline.to_model_space(images), pipeline.prompt_ids([""])[0]

    def device_model(self, model):
        """A pipeline is scored through the text-to-image kind's `Sampler` (the image benchmarks name its steps
        and guidance); a point model as it is."""
        if not isinstance(model, PromptedUNet):
            return super().device_model(model)
        pipeline = model.pipeline
        sampler = Sampler(TextToImage(model.unet, model.text_encoder, pipeline.tokenizer, pipeline.settings,
                                      pipeline.scheduler_config, pipeline.vae), steps=pipeline.settings["default_steps"],
                          guidance=None, sampler="ddim", seed=0)
        return sampler.to("cuda" if torch.cuda.is_available() else "cpu")

    @contextlib.contextmanager
    def scoring(self, cell, folder: Path, model, processor):
        if isinstance(model, Sampler):
            model.folder = folder  # the images lie beside the cell's outputs, which name them
        yield

    def scoring_cost(self, model) -> dict[str, Any]:
        return model.cost() if isinstance(model, Sampler) else {}
