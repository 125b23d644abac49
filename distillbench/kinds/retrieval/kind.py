"""The retrieval kind: dual encoders (an image CNN and a caption word-CNN, cosine scores) trained on
pocket-shapes image–caption pairs, with a cross-encoder teacher's score matrix as the signal, and scored
by Recall@K (`pocket-retrieval`).

A recipe names the student as ``arch:dual-encoder`` (a `DualEncoder` initialised from each seed, so every
method of a seed starts from the same weights) and its size under ``student_options``; the teacher is a pocket
retrieval model (`POCKET_MODELS`, family ``retrieval``: ``pocket:shapes-cross-encoder``, trained on first use
and cached) or a folder a retrieval run saved. Its ``data`` section says how many training pairs to generate
(``pocket:shapes-captions``, read through `POCKET_DATA`), and from which seed. Models are saved as
``model.safetensors`` + ``config.json`` (`models.py`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import Field, PositiveInt, field_validator

from distillbench.core.kind import Reference, StudentKind, Training, register_kind
from distillbench.core.models import parse_model_ref, resolve_path
from distillbench.core.recipe import _Strict, Recipe, keyed_dump, set_but_unused, stable_hash
from distillbench.core.registry import POCKET_DATA, POCKET_MODELS
from distillbench.kinds.retrieval.batching import RetrievalBatching
from distillbench.kinds.retrieval.data import CaptionPairs
from distillbench.kinds.retrieval.models import DualEncoder, load_model, read_config, save_model

STUDENT = "arch:dual-encoder"
PAIRS = "pocket:shapes-captions"  # the training pairs' source (`POCKET_DATA`, family caption-pairs)
TEACHERS = "retrieval"  # the `POCKET_MODELS` family of pocket retrieval models


class RetrievalData(_Strict):
    """The training pairs: generated pocket-shapes scenes, each with its caption."""

    train_size: int = Field(gt=0, description="number of training scenes (image–caption pairs)")
    data_seed: int = Field(default=0, description="the scene generator's seed (the recipe's seeds train)")


class DualEncoderOptions(_Strict):
    """The student's size; a field left out takes `DualEncoder`'s default."""

    image_widths: Annotated[list[PositiveInt], Field(min_length=1)] | None = Field(
        default=None, description="channels of the image CNN's stages (default 8, 16, 32)")
    embed_dim: PositiveInt | None = Field(default=None, description="the shared embedding's width (default 64)")
    word_dim: PositiveInt | None = Field(default=None, description="the caption word-CNN's width (default 32)")

    def given(self) -> dict[str, Any]:
        return {name: value for name, value in self.model_dump().items() if value is not None}


class RetrievalRecipe(Recipe):
    teacher: str = Field(description="a pocket retrieval model (pocket:shapes-cross-encoder), or a folder a "
                         "retrieval run saved (model.safetensors + config.json)")
    student: Literal["arch:dual-encoder"] = Field(description="a DualEncoder initialised from each seed")
    student_options: DualEncoderOptions = Field(default_factory=DualEncoderOptions)
    data: RetrievalData
    score_teacher: bool = Field(default=True, description="score the teacher once, as a reference row")

    @field_validator("teacher")
    @classmethod
    def _retrieval_model(cls, value: str) -> str:
        if not (is_pocket_teacher(value) or (Path(value) / "config.json").is_file()):
            raise ValueError(f"{value} is not a pocket retrieval model (pocket:shapes-cross-encoder) or a folder "
                             "with a retrieval model's config.json")
        return value


def is_pocket_teacher(ref: str) -> bool:
    """Whether `ref` names a pocket retrieval model (imports its plug-in only)."""
    parsed = parse_model_ref(ref)
    if parsed.backend != "pocket" or parsed.name not in POCKET_MODELS:
        return False
    return POCKET_MODELS.entry(parsed.name).family == TEACHERS


@contextlib.contextmanager
def one_thread():
    """Torch on one thread while this kind trains, builds its teacher and scores, as its boards were made:
    the numbers depend on the thread count (after 60 steps the weights differ by 5e-4 between one and two
    threads), and on two shared cores one thread trains these small models 4.5× faster than two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def initial_student(seed: int, options: dict[str, Any], vocabulary_size: int) -> DualEncoder:
    """The student every method starts from for a seed (the global RNG is left alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DualEncoder(vocabulary_size, **{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})


def model_directory(ref: str) -> Path:
    """The folder of a saved retrieval model: a pocket teacher's (trained and cached on first use) or `ref`."""
    parsed = parse_model_ref(ref)
    if parsed.backend != "pocket":
        return Path(ref)
    with one_thread():  # the teacher's weights depend on the thread count too
        return Path(resolve_path(parsed))


@register_kind("retrieval", summary="dual encoders (image CNN + caption word-CNN) trained on pocket-shapes "
               "image–caption pairs with a cross-encoder teacher's scores; scored by Recall@K")
class Retrieval(StudentKind):
    recipe_model = RetrievalRecipe
    data_kinds = frozenset({"retrieval"})
    benchmark_families = frozenset({"retrieval"})

    def __init__(self, recipe: RetrievalRecipe, out: Path):
        super().__init__(recipe, out)
        self._pairs: CaptionPairs | None = None

    @classmethod
    def recipe_problems(cls, recipe: RetrievalRecipe) -> list[str]:
        return set_but_unused(recipe, {
            "budget.teacher_top_k": "the top-k logit cache is for language models; the cross-encoder runs live",
            "budget.max_length": "tokens per example: for language models",
            "reference_teacher": "not used by dual encoders"})

    # the cell key ------------------------------------------------------------------------------
    def reference_rows(self) -> list[Reference]:
        # A freshly initialised student has nothing to score before training.
        return [Reference("teacher", self.recipe.teacher)] if self.recipe.score_teacher else []

    def fingerprint(self, ref: str) -> str:
        """The student's options (its weights come from the cell's seed), or a saved model's architecture and
        weights' sha256 (its config.json less the build report)."""
        if ref == STUDENT:
            return stable_hash({"model": STUDENT, **self.recipe.student_options.given()})
        config = read_config(model_directory(ref))
        return stable_hash({name: value for name, value in config.items() if name != "extra"})

    def method_models(self, method: Any) -> dict[str, str]:
        models = {"student": self.recipe.student}
        if method.uses_teacher:
            models["teacher"] = self.recipe.teacher
        return models

    def data_key(self, method: Any) -> dict[str, Any]:
        return {**keyed_dump(self.recipe.data), "version": POCKET_DATA.entry(PAIRS).extra["fingerprint"](PAIRS)}

    # models ------------------------------------------------------------------------------------
    def load(self, ref: str, seed: int = 0, options: dict[str, Any] | None = None):
        """(model, None): ``arch:dual-encoder`` is `initial_student` of `seed`, anything else a saved model."""
        if ref == STUDENT:
            return initial_student(seed, self.recipe.student_options.given(), len(self.pairs().vocabulary)), None
        return load_model(model_directory(ref)), None

    def save(self, model, processor, directory: Path) -> None:
        save_model(model, directory)

    def pairs(self) -> CaptionPairs:
        """The training pairs, read once per run (the student reads captions over their vocabulary)."""
        if self._pairs is None:
            data = self.recipe.data
            self._pairs = POCKET_DATA.get(PAIRS)("train", data.train_size, data.data_seed)
        return self._pairs

    # training ----------------------------------------------------------------------------------
    def training(self, cell, init_ref: str, processor) -> Training:
        pairs = self.pairs()
        frozen = {"teacher": self.frozen_model(self.recipe.teacher)} if "teacher_scores" in cell.method.needs else {}
        return Training(pairs, RetrievalBatching(pairs, self.recipe.budget.batch_size), frozen)

    def fit(self, cell, model, processor, init_ref: str, folder: Path, description: str):
        with one_thread():
            return super().fit(cell, model, processor, init_ref, folder, description)

    # scoring -----------------------------------------------------------------------------------
    def scoring(self, cell, folder: Path, model, processor):
        return one_thread()
