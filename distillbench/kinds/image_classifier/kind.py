"""The image-classifier kind: classifiers saved as safetensors folders (`classifiers.py`), trained on
augmented images with the teacher's logits and features (`images.ImageBatching`), scored by predicting
classes (top-1, CIFAR-100, linear probes).

Its recipe's ``data`` section (`ImageData`) names a pocket-shapes task or a CIFAR-100 folder, the
augmentation, and optionally how many labels per class a semi-supervised run keeps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from distillbench.core.errors import UserInputError
from distillbench.core.inputs import input_absent
from distillbench.core.kind import Reference, StudentKind, Training, register_kind
from distillbench.core.models import parse_model_ref
from distillbench.core.recipe import (_Strict, Recipe, keyed_dump, model_refs_checked, path_field, set_but_unused,
                                      when_set)
from distillbench.core.registry import METHODS
from distillbench.kinds.image_classifier.classifiers import classifier_spec, is_classifier_ref, load_classifier
from distillbench.kinds.image_classifier.images import (ImageBatching, hide_labels, image_data_fingerprint,
                                                        load_image_dataset, readable_image_source)

# The data fields of the section text and image students shared before kinds had sections of their own,
# at the values image recipes always had: they stay in image cells' keys, which keep their old values.
SHARED_TEXT_FIELDS = {"noise_fraction": 0.0, "conversations": 0, "chatty_fraction": 0.0}


class ImageData(_Strict):
    """An image classification dataset, its augmentation, and for semi-supervised runs the labels kept."""

    source: str = path_field(description="'pocket:shapes-many|shape|binary' or a CIFAR-100 folder in "
                             "torchvision's layout")
    split: str = "train"
    size: int | None = Field(default=None, gt=0, description="number of training images (pocket: generated)")
    augment: Literal["none", "flip", "crop-flip"] = when_set(default="none", description="training "
                                                             "augmentation, a function of (seed, step)")
    labeled_per_class: int | None = when_set(default=None, gt=0, description="few-shot semi-supervised data: "
                                             "only the first k training examples of each class keep their label; "
                                             "each step draws batch_size labeled and batch_size unlabeled")

    @field_validator("source")
    @classmethod
    def _readable(cls, value: str) -> str:
        return readable_image_source(value)


class ImageClassifierRecipe(Recipe):
    teacher: str
    student: str
    data: ImageData

    _model_refs = model_refs_checked("teacher", "reference_teacher", "student")


@register_kind("image-classifier", summary="image classifiers (CIFAR architectures, pocket-shapes CNNs and "
               "ViTs, CLIP zero-shot teachers) trained on augmented images; scored by predicting classes")
class ImageClassifier(StudentKind):
    recipe_model = ImageClassifierRecipe
    data_kinds = frozenset({"images"})
    benchmark_families = frozenset({"classify"})

    def __init__(self, recipe: ImageClassifierRecipe, out: Path):
        super().__init__(recipe, out)
        self._dataset = None

    @classmethod
    def recipe_problems(cls, recipe: ImageClassifierRecipe) -> list[str]:
        problems = [f"{field}: {ref} is not an image classifier (pocket:shapes-teacher-<task>, arch:<name>, or a "
                    "folder with classifier.json)" for field in ("teacher", "reference_teacher", "student")
                    if (ref := getattr(recipe, field)) is not None and not is_classifier_ref(ref)]
        problems += set_but_unused(recipe, {
            "budget.teacher_top_k": "the top-k logit cache is for language models; image teachers run live",
            "budget.max_length": "tokens per example: for language models",
            "reference_teacher": "not used by image classifiers"})
        if recipe.data.labeled_per_class is not None:
            problems += [f"methods[{index}]: {spec.name} needs every example's label; it cannot train on "
                         "semi-supervised data (data.labeled_per_class)" for index, spec in enumerate(recipe.methods)
                         if spec.name in METHODS and not getattr(METHODS.get(spec.name), "supports_unlabeled", True)]
        return problems

    # the cell key ------------------------------------------------------------------------------
    def reference_rows(self) -> list[Reference]:
        # A freshly initialised classifier (arch:) has nothing to score before training.
        return [row for row in super().reference_rows() if not row.model_ref.startswith("arch:")]

    def method_models(self, method: Any) -> dict[str, str]:
        models = {"student": self.recipe.student}
        if method.uses_teacher:
            models["teacher"] = self.recipe.teacher
        models.update({f"source:{ref}": ref for ref in method.source_teachers})
        return models

    def data_key(self, method: Any) -> dict[str, Any]:
        return {**keyed_dump(self.recipe.data), **SHARED_TEXT_FIELDS,
                "source_hash": image_data_fingerprint(self.recipe.data.source)}

    # models ------------------------------------------------------------------------------------
    def load(self, ref: str, seed: int = 0, options: dict[str, Any] | None = None):
        """(classifier, None): a fresh ``arch:`` classifier takes its weights from `seed` and its classes from
        the training data."""
        return load_classifier(ref, num_classes=self.dataset().num_classes, seed=seed), None

    def save(self, model, processor, directory: Path) -> None:
        model.save_pretrained(directory, safe_serialization=True)

    def dataset(self):
        """The training images (labels hidden beyond `labeled_per_class`), read once per run."""
        if self._dataset is None:
            data = self.recipe.data
            dataset = load_image_dataset(data.source, data.split, data.size)
            self._dataset = hide_labels(dataset, data.labeled_per_class) if data.labeled_per_class else dataset
        return self._dataset

    # training ----------------------------------------------------------------------------------
    def preflight(self, plan) -> None:
        """The training data reads, and every classifier and benchmark agrees on its number of classes."""
        problems = self._class_count_problems(plan, ("teacher", "student"))
        if problems:
            raise UserInputError(problems)

    def offline_problems(self, plan) -> list[str]:
        """As `preflight`, for the classifiers in local folders (a pocket teacher would be trained first); the
        class counts need the training data and the models' folders, so absent ones are not compared."""
        if input_absent(self.recipe.data.source):
            return []
        local = tuple(field for field in ("teacher", "student")
                      if parse_model_ref(ref := getattr(self.recipe, field)).backend == "local" and not input_absent(ref))
        try:
            return self._class_count_problems(plan, local)
        except UserInputError as exc:
            return exc.problems

    def _class_count_problems(self, plan, fields: tuple[str, ...]) -> list[str]:
        classes, problems = self.dataset().num_classes, []
        for field in fields:
            spec = classifier_spec(getattr(self.recipe, field))
            if spec is not None and spec.num_classes != classes:
                problems.append(f"{field}: {getattr(self.recipe, field)} has {spec.num_classes} classes, "
                                f"data.source {self.recipe.data.source} has {classes}")
        for index, bench in enumerate(plan.benchmarks):
            count = bench.benchmark.num_classes()
            if count is not None and count != classes:
                problems.append(f"benchmarks[{index}]: {bench.name} has {count} classes, the training data {classes}")
        return problems

    def training(self, cell, init_ref: str, processor) -> Training:
        method = cell.method
        batching = ImageBatching(self.dataset(), self.recipe.data.augment, self.recipe.budget.batch_size)
        frozen = {}
        if "teacher_logits" in method.needs or "teacher_features" in method.needs:
            frozen["teacher"] = self.frozen_model(self.recipe.teacher)
        frozen.update({f"source:{ref}": self.frozen_model(ref) for ref in method.source_teachers})
        return Training(self.dataset(), batching, frozen)

