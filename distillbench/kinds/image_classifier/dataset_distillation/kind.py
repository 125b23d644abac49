"""The dataset-distillation kind: a cell's product is a small training set and a fresh student trained on it
alone, scored by `dd-accuracy` (top-1 on the real test split).

    committee (experts + priors) ──► method.distil ──► distilled set (uint8, images_per_class per class)
                                                           │  saved as <cell>/distilled-set.safetensors
    fresh student (arch:) ──► core train loop (ImageBatching, the committee's vote as the teacher) ──► dd-accuracy

A method makes its set from the real training images (`random-real`, `random-real-committee`) or recovers it
with the committee (`cv-dd`), and trains the student with hard labels or with the committee's soft labels.
The committee's experts are trained once per run directory with CE on the real images (or read from the zoo
or a folder) and cached under <out>/experts/ by content key; the cells of the methods that use them are keyed
on them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from distillbench.core.errors import UserInputError
from distillbench.core.files import temporary_name
from distillbench.core.kind import Reference, StudentKind, Training, register_kind
from distillbench.core.models import parse_model_ref, validate_model_ref
from distillbench.core.recipe import (_Strict, Budget, Recipe, keyed_dump, model_refs_checked, option, path_field,
                                      set_but_unused, stable_hash)
from distillbench.core.registry import ARCHITECTURES, BENCHMARKS
from distillbench.kinds.image_classifier.dataset_distillation.committee import AUGMENT, Committee, Expert, accuracy_percent, build_expert
from distillbench.kinds.image_classifier.classifiers import (classifier_spec, is_classifier_ref, load_classifier,
                                                            load_directory)
from distillbench.kinds.image_classifier.images import (ImageBatching, ImageDataset, image_data_fingerprint,
                                                        load_image_dataset, readable_image_source)

DISTILLED_SET = "distilled-set.safetensors"  # beside the cell's model folder
# An expert trained here is named by what it is made of: "trained-expert:<architecture>@<content key>".
TRAINED_EXPERT = "trained-expert:"


class ExpertSpec(_Strict):
    """A committee member: a trained classifier, or an architecture trained here with CE on the real images."""

    ref: str | None = Field(default=None, description="pocket:<classifier> or a classifier folder")
    architecture: str | None = Field(default=None, description="trained here (see expert_budget)")
    steps: int = Field(default=600, gt=0, description="its training steps (the rest of expert_budget applies)")
    seed: int = 0

    @model_validator(mode="after")
    def _one_source(self) -> "ExpertSpec":
        if (self.ref is None) == (self.architecture is None):
            raise ValueError("an expert is either ref (a trained classifier) or architecture (trained here)")
        return self

    @field_validator("ref")
    @classmethod
    def _classifier(cls, value: str | None) -> str | None:
        if value is not None:
            validate_model_ref(value)
            if not is_classifier_ref(value):
                raise ValueError(f"{value} is not an image classifier (pocket:<classifier> or a folder with "
                                 "classifier.json)")
        return value

    @field_validator("architecture")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        if value is not None and value not in ARCHITECTURES.names():
            raise ValueError(f"unknown classifier architecture {value!r}; known: {', '.join(ARCHITECTURES.names())}")
        return value


class DistillationData(_Strict):
    """The real images a distilled set is made from, and how many images of each class it holds."""

    source: str = path_field(description="'pocket:shapes-many|shape|binary' or a CIFAR-100 folder in "
                             "torchvision's layout")
    train_size: int | None = Field(default=None, gt=0, description="real training images (pocket: generated); "
                                   "default: the whole split")
    images_per_class: int = Field(default=10, gt=0, description="the size of every row's distilled set per "
                                  "class (IPC): the same for all rows, so they compare")

    @field_validator("source")
    @classmethod
    def _readable(cls, value: str) -> str:
        return readable_image_source(value)


class DatasetDistillationRecipe(Recipe):
    student: str = Field(description="the fresh network trained on each distilled set: arch:<architecture>")
    data: DistillationData
    committee: list[ExpertSpec] = Field(min_length=1)
    expert_budget: Budget | None = Field(default=None, description="how the committee's architectures train "
                                         "(steps: each expert's own); default: budget")

    _model_refs = model_refs_checked("student")


@register_kind("dataset-distillation", summary="dataset distillation: each method makes a small training set "
               "(from real images and a committee of experts) and a fresh classifier trains on it alone; scored "
               "by dd-accuracy")
class DatasetDistillation(StudentKind):
    recipe_model = DatasetDistillationRecipe
    data_kinds = frozenset({"distilled-set"})
    benchmark_families = frozenset({"dataset-distillation"})
    per_method_budget = False  # every distilled set is judged by a fresh student trained the same way

    def __init__(self, recipe: DatasetDistillationRecipe, out: Path):
        super().__init__(recipe, out)
        self._real: ImageDataset | None = None
        self._experts: list[Expert] | None = None
        self._committees: dict[float, Committee] = {}
        self._sets: dict[str, ImageDataset] = {}

    @classmethod
    def recipe_problems(cls, recipe: DatasetDistillationRecipe) -> list[str]:
        problems = [] if parse_model_ref(recipe.student).backend == "arch" else [
            f"student: {recipe.student}: a distilled set trains a fresh network: arch:<architecture>"]
        problems += set_but_unused(recipe, {"teacher": "the committee is the teacher",
                                            "reference_teacher": "the committee is the teacher",
                                            "budget.teacher_top_k": "the top-k logit cache is for language models",
                                            "budget.max_length": "tokens per example: for language models"})
        return problems + _benchmark_problems(recipe)

    # the cell key ------------------------------------------------------------------------------
    def reference_rows(self) -> list[Reference]:
        return []  # nothing is scored before training: the student starts fresh, the committee is no row

    def fingerprint(self, ref: str) -> str:
        # A trained expert's reference is its content key: the cell key needs no trained expert.
        return ref if ref.startswith(TRAINED_EXPERT) else super().fingerprint(ref)

    def method_models(self, method: Any) -> dict[str, str]:
        models = {"student": self.recipe.student}
        if method.uses_committee:
            models.update({f"expert{index}": self._expert_ref(spec) for index, spec in enumerate(self.recipe.committee)})
        return models

    def data_key(self, method: Any) -> dict[str, Any]:
        return {**keyed_dump(self.recipe.data), "source_hash": image_data_fingerprint(self.recipe.data.source)}

    def _expert_ref(self, spec: ExpertSpec) -> str:
        if spec.ref is not None:
            return spec.ref
        data = self.recipe.data
        key = stable_hash({"expert": spec.model_dump(mode="json"), "budget": keyed_dump(self._expert_budget(spec)),
                           "data": {"source": data.source, "train_size": data.train_size,
                                    "source_hash": image_data_fingerprint(data.source)}})
        return f"{TRAINED_EXPERT}{spec.architecture}@{key}"

    def _expert_budget(self, spec: ExpertSpec) -> Budget:
        return (self.recipe.expert_budget or self.recipe.budget).model_copy(update={"steps": spec.steps})

    # models ------------------------------------------------------------------------------------
    def load(self, ref: str, seed: int = 0, options: dict[str, Any] | None = None):
        """(classifier, None): the fresh student takes its weights from `seed` and its classes from the real data."""
        return load_classifier(ref, num_classes=self.real().num_classes, seed=seed), None

    def save(self, model, processor, directory: Path) -> None:
        model.save_pretrained(directory, safe_serialization=True)

    def real(self) -> ImageDataset:
        """The real training images, read once per run."""
        if self._real is None:
            self._real = load_image_dataset(self.recipe.data.source, "train", self.recipe.data.train_size)
        return self._real

    def experts(self) -> list[Expert]:
        """The committee, built (or read from <out>/experts/) once per run, on the device students train on."""
        if self._experts is None:
            self._experts = [self._expert(spec) for spec in self.recipe.committee]
        return self._experts

    def _expert(self, spec: ExpertSpec) -> Expert:
        if spec.ref is not None:
            model = load_classifier(spec.ref)
        else:
            name = self._expert_ref(spec).removeprefix(TRAINED_EXPERT).replace("@", "-")
            model = load_directory(build_expert(spec.architecture, spec.seed, self.real(), self._expert_budget(spec),
                                                self.out / "experts" / f"expert-{name}"))
        model = self.device_model(model)
        return Expert(model, accuracy_percent(model, self.real()))

    def committee(self, method: Any) -> Committee:
        """The experts' vote with the weights `method` labels with (one per weight temperature in the run)."""
        temperature = method.label_weight_temperature
        if temperature not in self._committees:
            self._committees[temperature] = Committee(self.experts(), temperature)
        return self._committees[temperature]

    # training ----------------------------------------------------------------------------------
    def preflight(self, plan) -> None:
        problems = self._expert_class_problems(spec for spec in self.recipe.committee if spec.ref is not None)
        if problems:
            raise UserInputError(problems)

    def offline_problems(self, plan) -> list[str]:
        """As `preflight`, for the experts in local folders (a pocket classifier would be trained first)."""
        return self._expert_class_problems(spec for spec in self.recipe.committee
                                           if spec.ref is not None and parse_model_ref(spec.ref).backend == "local")

    def _expert_class_problems(self, specs) -> list[str]:
        counts = {spec.ref: classifier_spec(spec.ref).num_classes for spec in specs}
        classes = self.real().num_classes if counts else None  # the real data is read only when there is a ref
        return [f"committee: {ref} has {count} classes, data.source {self.recipe.data.source} has {classes}"
                for ref, count in counts.items() if count != classes]

    def distilled_set(self, cell) -> ImageDataset:
        """The cell's distilled set, made once (`fit` times and saves it, `training` trains on it)."""
        if cell.key not in self._sets:
            experts = self.experts() if cell.method.uses_committee else []
            self._sets[cell.key] = cell.method.distil(self.real(), experts, self.recipe.data.images_per_class,
                                                      cell.seed)
        return self._sets[cell.key]

    def training(self, cell, init_ref: str, processor) -> Training:
        distilled = self.distilled_set(cell)
        frozen = {"teacher": self.committee(cell.method)} if "teacher_logits" in cell.method.needs else {}
        return Training(distilled, ImageBatching(distilled, AUGMENT, self.recipe.budget.batch_size), frozen)

    def fit(self, cell, model, processor, init_ref: str, folder: Path, description: str):
        """Make the cell's distilled set, save it beside the student, then train the fresh student on it alone
        (the core loop); the cost adds the seconds the set took and, with a committee, the experts' priors."""
        experts = self.experts() if cell.method.uses_committee else []  # built before the set is timed
        started = time.perf_counter()
        distilled = self.distilled_set(cell)
        seconds = time.perf_counter() - started
        save_distilled_set(distilled, folder / DISTILLED_SET)
        try:
            model, result, extra = super().fit(cell, model, processor, init_ref, folder, description)
        finally:
            self._sets.pop(cell.key)
        priors = {"committee_priors": [expert.prior for expert in experts]} if experts else {}
        return model, result, {**extra, "distil_seconds": round(seconds, 2), **priors}


def _benchmark_problems(recipe: DatasetDistillationRecipe) -> list[str]:
    """A distilled set is scored on the real test split of its own source: anything else would score a student
    on other data (or on the training images) under a dataset-distillation label."""
    problems = []
    source = recipe.data.source
    for index, spec in enumerate(recipe.benchmarks):
        if spec.name not in BENCHMARKS:
            continue
        cls = BENCHMARKS.get(spec.name)
        split, dataset = option(spec, cls, "split"), option(spec, cls, "dataset")
        if split is not None and split != "test":
            problems.append(f"benchmarks[{index}].split: {split!r}; {spec.name} is scored on the test split")
        if dataset is not None and Path(dataset).resolve() != Path(source).resolve():
            problems.append(f"benchmarks[{index}].dataset: {dataset!r} is not the recipe's source {source!r} "
                            "(data.source)")
    return problems


def save_distilled_set(dataset: ImageDataset, path: Path) -> None:
    """The set as safetensors: ``images`` (uint8 [N, 3, H, W]) and ``labels`` (int64 [N]); the metadata holds
    the class names, the normalisation and the item ids (written atomically)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"name": dataset.name, "class_names": json.dumps(dataset.class_names),
                "mean": json.dumps(dataset.mean), "std": json.dumps(dataset.std), "ids": json.dumps(dataset.ids)}
    staging = temporary_name(path)
    save_file({"images": dataset.images.contiguous(), "labels": dataset.labels.contiguous()}, str(staging), metadata)
    staging.replace(path)
