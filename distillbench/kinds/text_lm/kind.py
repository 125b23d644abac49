"""The text language-model kind: causal LMs loaded and saved with transformers, trained on tokenized
SFT records, preference pairs, ranked lists or problems (and on-policy or self-generated samples), scored
by generating text.

Its recipe's ``data`` section (`TextData`) names the SFT source and the optional preference, ranked and
validation files; ``generation`` chooses how benchmarks generate (transformers or vLLM).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from distillbench.core.errors import UserInputError
from distillbench.core.inputs import absent_allowed, input_absent
from distillbench.core.kind import StudentKind, Training, register_kind
from distillbench.core.models import fingerprint, parse_model_ref, resolve_path
from distillbench.core.recipe import Recipe, _Strict, keyed_dump, model_refs_checked, option, path_field
from distillbench.core.registry import METHODS
from distillbench.kinds.text_lm import vllm_backend
from distillbench.kinds.text_lm.batching import TokenBatching
from distillbench.kinds.text_lm.data import (data_fingerprint, is_pocket_source, load_preferences, load_ranked,
                                             load_records, pocket_sources, problem_records, tokenize_preferences,
                                             tokenize_ranked, tokenize_records)
from distillbench.kinds.text_lm.generation import serving
from distillbench.kinds.text_lm.models import check_shared_vocabulary, load_causal_lm
from distillbench.kinds.text_lm.topk_cache import SignalCache

# Dev problems of a pocket source that validation-watching schedules (distillm) are scored on.
VALIDATION_SIZE = 200
# The optional data files, and which methods read them (only those methods' cells are keyed on them).
OPTIONAL_FILES = {"preferences": lambda method: method.data_kind == "preference",
                  "ranked": lambda method: method.data_kind == "ranked",
                  "validation": lambda method: "validation" in method.needs}


class TextData(_Strict):
    """Training data: SFT records (problem / solution, or chats) and, for the methods that read them,
    preference pairs, ranked lists and validation records."""

    source: str = path_field(description="'pocket:math' or a JSONL file of {problem, solution} records "
                             "(or {messages: [...]} chats)")
    split: str = "train"
    size: int | None = Field(default=None, gt=0, description="number of SFT examples (pocket: generated)")
    noise_fraction: float = Field(default=0.0, ge=0, le=1,
                                  description="pocket sources: share of solutions with realistic noise")
    conversations: int = Field(default=0, ge=0, description="pocket:math only: two-turn pocket-mtbench-style "
                               "chats mixed into the SFT data (disjoint from the evaluation questions)")
    chatty_fraction: float = Field(default=0.0, ge=0, le=1, description="pocket:math only: share of the chats' "
                                   "second answers written in a chatty, unboxed style (a habit of one SFT source)")
    validation: str | None = path_field(default=None, description="JSONL file of {problem, solution} records for "
                                        "methods that watch a validation loss (distillm); pocket:math uses 200 "
                                        "dev problems")
    preferences: str | None = path_field(default=None, description="'pocket:math-preference' or a JSONL file of "
                                         "{prompt, chosen, rejected} records (chat messages or strings)")
    ranked: str | None = path_field(default=None, description="'pocket:math-ranked' or a JSONL file of {prompt, "
                                    "responses: [{content, score}, ...]} for listwise and curriculum methods")

    @field_validator("source", "preferences", "validation", "ranked")
    @classmethod
    def _known_source(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if value.startswith("pocket:"):
            if not is_pocket_source(value):
                raise ValueError(f"unknown pocket dataset; known: {', '.join(pocket_sources())}")
        elif not Path(value).is_file() and not absent_allowed(value):
            raise ValueError(f"file not found: {value}")
        return value


class GenerationSpec(_Strict):
    """How benchmarks generate with the model under evaluation."""

    backend: Literal["hf", "vllm"] = Field(default="hf", description="transformers' generate (batched, KV cache, "
                                           "length-sorted), or a vLLM engine on the same weights (GPU)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(default="auto", description="vLLM only")
    gpu_memory_utilization: float = Field(default=0.5, gt=0, le=1, description="vLLM only: the share of GPU "
                                          "memory the engine takes (the transformers model stays loaded beside it)")


class TextLMRecipe(Recipe):
    teacher: str
    student: str
    data: TextData
    generation: GenerationSpec = Field(default_factory=GenerationSpec)

    _model_refs = model_refs_checked("teacher", "reference_teacher", "student")


@register_kind("text-lm", summary="causal language models (transformers): SFT, logit distillation, preference "
               "optimisation, on-policy and self-generated data; scored by generating text")
class TextLM(StudentKind):
    recipe_model = TextLMRecipe
    data_kinds = frozenset({"sft", "preference", "ranked", "problems"})
    benchmark_families = frozenset({"llm"})

    def __init__(self, recipe: TextLMRecipe, out: Path):
        super().__init__(recipe, out)
        self._examples: dict[str, list] = {}
        self._caches: dict[str, SignalCache] = {}

    @classmethod
    def recipe_problems(cls, recipe: TextLMRecipe) -> list[str]:
        problems = [] if recipe.budget.max_length is not None else [
            "budget.max_length: required for language models (tokens per example)"]
        return problems + _missing_inputs(recipe) + _chunking_and_cache(recipe)

    # the cell key ------------------------------------------------------------------------------
    def method_models(self, method: Any) -> dict[str, str]:
        models = {"student": self.recipe.student}
        if method.uses_teacher:
            models["teacher"] = self.recipe.teacher
        if "reference_teacher_logits" in method.needs:
            models["reference_teacher"] = self.recipe.reference_teacher
        models.update({f"source:{ref}": ref for ref in method.source_teachers})
        return models

    def data_key(self, method: Any) -> dict[str, Any]:
        """The data section and the hashes of its files, less the optional files `method` does not read."""
        data = self.recipe.data
        keyed = {**keyed_dump(data), "source_hash": data_fingerprint(data.source),
                 **{f"{name}_hash": data_fingerprint(getattr(data, name)) for name in OPTIONAL_FILES}}
        unread = {name for name, reads in OPTIONAL_FILES.items() if not reads(method)}
        return {name: value for name, value in keyed.items()
                if name not in unread and name.removesuffix("_hash") not in unread}

    def benchmark_key(self) -> dict[str, Any]:
        # Outputs of another generation backend are other outputs: keyed apart (the default keeps the old keys).
        generation = self.recipe.generation
        return {} if generation.backend == "hf" else {"generation": generation.model_dump(mode="json")}

    # models ------------------------------------------------------------------------------------
    def load(self, ref: str, seed: int = 0, options: dict[str, Any] | None = None):
        return load_causal_lm(ref, trust_remote_code=self.recipe.trust_remote_code)

    def save(self, model, tokenizer, directory: Path) -> None:
        model.save_pretrained(directory, safe_serialization=True)
        tokenizer.save_pretrained(directory)

    # training ----------------------------------------------------------------------------------
    def preflight(self, plan) -> None:
        """A vLLM backend is installed, teachers share the student's vocabulary, and the data files read."""
        if self.recipe.generation.backend == "vllm":
            vllm_backend.check_available()
        for teacher in self._logit_teachers(plan):
            check_shared_vocabulary(teacher, self.recipe.student)
        self._read_data_files(plan)

    def offline_problems(self, plan) -> list[str]:
        """The data files read, and local teachers share a local student's vocabulary."""
        local = [ref for ref in [self.recipe.student, *self._logit_teachers(plan)]
                 if parse_model_ref(ref).backend == "local" and not input_absent(ref)]
        try:
            self._read_data_files(plan)
            if len(local) > 1 and local[0] == self.recipe.student:
                for teacher in local[1:]:
                    check_shared_vocabulary(teacher, self.recipe.student)
        except UserInputError as exc:
            return exc.problems
        return []

    def _logit_teachers(self, plan) -> list[str]:
        """The teachers whose logits a method of the plan compares with the student's, token by token."""
        methods = [cell.method for cell in plan.cells if cell.method is not None]
        teachers = [self.recipe.teacher] if any(method.uses_teacher for method in methods) else []
        if any("reference_teacher_logits" in method.needs for method in methods):
            teachers.append(self.recipe.reference_teacher)
        return teachers

    def _read_data_files(self, plan) -> None:
        """Read the local data files the plan's methods train on (bad records fail here)."""
        methods = [cell.method for cell in plan.cells if cell.method is not None]
        data, kinds = self.recipe.data, {method.data_kind for method in methods}
        for kind, source, read in (("sft", data.source, lambda: load_records(data.source, data.split, data.size)),
                                   ("problems", data.source, lambda: problem_records(data.source, data.split,
                                                                                     data.size)),
                                   ("preference", data.preferences, lambda: load_preferences(data.preferences)),
                                   ("ranked", data.ranked, lambda: load_ranked(data.ranked))):
            if kind in kinds and not source.startswith("pocket:") and not input_absent(source):
                read()

    def training(self, cell, init_ref: str, tokenizer) -> Training:
        method = cell.method
        cache = self._signal_cache(method, tokenizer)
        validation = self._examples_of(tokenizer, "validation") if "validation" in method.needs else None
        batching = TokenBatching(tokenizer, validation=validation, signal_cache=cache,
                                 loss_chunk_size=self.recipe.budget.loss_chunk_size)
        extra = {"signal_cache": {"k": cache.k, "bytes_per_position": cache.bytes_per_position(),
                                  "teacher_passes": int(cache.metadata["teacher_passes"])}} if cache else {}
        return Training(self._examples_of(tokenizer, method.data_kind), batching, self._frozen_models(method, init_ref),
                        extra)

    def _frozen_models(self, method, init_ref: str) -> dict:
        """The frozen models the method draws signals from, by role."""
        needs, frozen = method.needs, {}
        if "teacher_logits" in needs:
            frozen["teacher"] = self.frozen_model(self.recipe.teacher)
        if "reference_teacher_logits" in needs:
            frozen["reference_teacher"] = self.frozen_model(self.recipe.reference_teacher)
        for ref in method.source_teachers:
            frozen[f"source:{ref}"] = self.frozen_model(ref)
        if "reference_logps" in needs:
            # DPO-style methods measure the policy against its own initialisation unless they name the teacher.
            frozen["reference"] = (self.frozen_model(self.recipe.teacher) if method.reference_model == "teacher"
                                   else self.load(init_ref)[0])
        return frozen


    def _signal_cache(self, method, tokenizer) -> SignalCache | None:
        """The run's top-k teacher cache for the method's training data, built on first use (budget.teacher_top_k)."""
        k = self.recipe.budget.teacher_top_k
        if k is None or "teacher_logits" not in method.needs or method.generates_examples:
            return None
        if method.data_kind not in self._caches:
            teacher = self.device_model(self.frozen_model(self.recipe.teacher))
            self._caches[method.data_kind] = SignalCache.build_or_load(
                self.out / "signals", teacher, fingerprint(self.recipe.teacher),
                self._examples_of(tokenizer, method.data_kind), k)
        return self._caches[method.data_kind]

    def _examples_of(self, tokenizer, kind: str):
        """Examples of one kind ("sft", "preference", "ranked", "problems", or "validation" for schedules that
        watch a validation loss), built once per run."""
        if kind not in self._examples:
            self._examples[kind] = self._read_examples(tokenizer, kind)
        return self._examples[kind]

    def _read_examples(self, tokenizer, kind: str):
        data, max_length = self.recipe.data, self.recipe.budget.max_length
        if kind == "preference":
            return tokenize_preferences(tokenizer, load_preferences(data.preferences), max_length)
        if kind == "problems":  # untokenized records with answers, for methods that search (mcts-dpo)
            return problem_records(data.source, data.split, data.size)
        if kind == "ranked":
            return tokenize_ranked(tokenizer, load_ranked(data.ranked), max_length)
        if kind == "validation":
            records = (load_records(data.source, "dev", VALIDATION_SIZE) if data.source.startswith("pocket:")
                       else load_records(data.validation, "dev", None))
            return tokenize_records(tokenizer, records, max_length)
        records = load_records(data.source, data.split, data.size, data.noise_fraction, data.conversations,
                               data.chatty_fraction)
        return tokenize_records(tokenizer, records, max_length)

    # scoring -----------------------------------------------------------------------------------
    def scoring(self, cell, folder: Path, model, tokenizer):
        """transformers generates (no context), or a vLLM engine on the same weights."""
        spec = self.recipe.generation
        if spec.backend == "hf":
            return super().scoring(cell, folder, model, tokenizer)

        ref = parse_model_ref(cell.model_ref)
        location, revision = ((resolve_path(ref), ref.revision) if cell.kind == "reference"
                              else (str(folder / "model"), None))
        return serving(vllm_backend.VLLMGenerator(location, model, revision=revision, dtype=spec.dtype,
                                                  gpu_memory_utilization=spec.gpu_memory_utilization,
                                                  seed=cell.seed or 0, trust_remote_code=self.recipe.trust_remote_code))


def _missing_inputs(recipe: TextLMRecipe) -> list[str]:
    """The data files and models the recipe's methods need."""
    methods = [(s.name, METHODS.get(s.name)) for s in recipe.methods if s.name in METHODS]
    problems = []
    for field, missing, test in (
            ("data.preferences", recipe.data.preferences is None, lambda cls: cls.data_kind == "preference"),
            ("data.ranked", recipe.data.ranked is None, lambda cls: cls.data_kind == "ranked"),
            ("reference_teacher", recipe.reference_teacher is None,
             lambda cls: "reference_teacher_logits" in cls.needs),
            ("data.validation", recipe.data.validation is None and not recipe.data.source.startswith("pocket:"),
             lambda cls: "validation" in cls.needs)):
        needing = [name for name, cls in methods if test(cls)]
        if missing and needing:
            problems.append(f"{field}: required by {', '.join(dict.fromkeys(needing))}")
    return problems


def _chunking_and_cache(recipe: TextLMRecipe) -> list[str]:
    """Chunked losses only for methods that support them; a top-k cache at least as deep as a method reads."""
    problems = []
    for index, spec in enumerate(recipe.methods):
        if spec.name not in METHODS:
            continue
        cls = METHODS.get(spec.name)
        if recipe.budget.loss_chunk_size is not None and not getattr(cls, "supports_chunked_loss", False):
            chunking = sorted(e.name for e in METHODS.entries() if getattr(e.obj, "supports_chunked_loss", False))
            problems.append(f"methods[{index}]: {spec.name} computes its loss from the full logits; "
                            f"budget.loss_chunk_size is for {', '.join(chunking)}")
        # DCKD and ADPA read the teacher's top_k tokens; a smaller cache would fill the rest with ties
        cached, top_k = recipe.budget.teacher_top_k, option(spec, cls, "top_k")
        if cached is not None and isinstance(top_k, int) and top_k > cached:
            problems.append(f"methods[{index}]: {spec.name} reads the teacher's top {top_k} tokens, but "
                            f"budget.teacher_top_k caches {cached}: raise it or lower top_k")
    return problems
