"""The vision-language-model kind: LLaVA-style models loaded with transformers' image-text-to-text classes and
their processor (`models.load_vlm`), scored by generating greedy replies to images and videos (VQAv2, POPE,
CHAIR, VideoHallucer and their pocket instances).

Its rows are the reference rows: the teacher, the reference teacher when given, and the student before
training. No method trains a VLM student yet (VLM distillation comes later): a recipe lists none and
needs no budget.
"""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from distillbench.core.kind import StudentKind, register_kind
from distillbench.core.recipe import ReferenceRowsRecipe, model_refs_checked
from distillbench.kinds.vlm.models import load_vlm


class VLMRecipe(ReferenceRowsRecipe):
    teacher: str
    student: str

    @field_validator("teacher", "reference_teacher", "student")
    @classmethod
    def _not_pocket(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("pocket:"):  # pocket:student-init is a language model
            raise ValueError("pocket: names the language-model zoo; the pocket VLMs are the folders "
                             "distillbench/pocket/vlm_zoo/<name>")
        return value

    _model_refs = model_refs_checked("teacher", "reference_teacher", "student")


@register_kind("vlm", summary="vision-language models (LLaVA-style, transformers) scored by generating replies "
               "to images and videos")
class VisionLanguageModel(StudentKind):
    recipe_model = VLMRecipe
    benchmark_families = frozenset({"vlm"})

    def load(self, ref: str, seed: int = 0, options: dict[str, Any] | None = None):
        return load_vlm(ref, trust_remote_code=self.recipe.trust_remote_code)
