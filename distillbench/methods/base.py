"""The method contract.

A method is a registered dataclass: its fields are the paper's hyperparameters
with the paper's defaults. It declares the signals it needs, and `loss` returns
its named loss terms; the harness sums them, logs each one, and owns the loop.
The arithmetic lives in pure functions beside each method.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from distillbench.core.registry import METHODS
from distillbench.core.tensors import upcast

if TYPE_CHECKING:
    from distillbench.core.recipe import Budget
    from distillbench.core.train import TrainRun

# Signals the harness can provide in a batch, beside the tokenized examples:
#   teacher_logits            [B, T-1, V] the teacher's next-token logits on the same tokens, for every
#                             sequence of the batch ({prefix}teacher_logits: '', chosen_, rejected_, sample_)
#   reference_teacher_logits  the same from the aligned teacher's reference (recipe reference_teacher)
#   reference_logps           reference_{chosen,rejected}_logps, [B] summed response log-probs (preference
#                             data), and reference_{chosen,rejected}_mean_logps
#   validation                not in the batch: held-out examples (the data's dev split, the batching's
#                             `validation`) for a schedule that watches the validation loss, or for measures
# Image classification batches (data_kind "images", kinds/image_classifier/images.py) hold images, labels and epoch, and:
#   teacher_logits            [B, C] the teacher classifier's logits on the same (augmented) images
#   teacher_features          [B, D] the teacher's penultimate features (the input of its final linear layer)
#   source_features           [[B, D_s], ...] the penultimate features of each of `source_teachers`
SIGNALS = ("teacher_logits", "reference_teacher_logits", "reference_logps", "validation", "teacher_features",
           "source_features")


def register_method(name: str, *, family: str, paper: str = "", summary: str = ""):
    """Register a method dataclass under `name` (see distillbench.core.registry)."""
    return METHODS.register(name, family=family, paper=paper, summary=summary)


class Method(ABC):
    """A distillation method: its loss, the fields the harness reads, and the hooks the train loop calls.

    The train loop (core/train.py) owns the loop; a method changes what a step trains on, or what
    follows it, only through the hooks below, whose defaults change nothing. Hooks see the
    run as a `TrainRun` (core/train.py): the examples, the kind's batching, the frozen models, the
    budget, the seed, the step, and the student (as trained, and unwrapped). Behaviours several
    methods share are mixins built on these hooks: `Staged` below; on-policy sampling, DistiLLM's
    adaptive schedule, self-made examples and a moving reference in methods/llm/hooks.py.
    """

    # --- The fields a method may set (class attributes, or properties over its hyperparameters) -------------
    # The signals it needs in its batches (see SIGNALS).
    needs: ClassVar[tuple[str, ...]] = ()
    # What the loss averages over inside a batch, so accumulation can weight micro-batches:
    # "tokens" (token-level losses) or "examples" (sequence-level losses such as DPO).
    normalize_by: ClassVar[str] = "tokens"
    # The examples a method trains on: "sft" (prompt, response), "preference" (prompt, chosen, rejected),
    # "ranked" (prompt, scored responses), "problems" (records with an answer), "images", ...
    data_kind: ClassVar[str] = "sft"
    # The sequences of a batch that logit signals are computed on ('' for sft data; 'chosen',
    # 'rejected', 'sample' for preference data); None: all of them.
    logit_sequences: ClassVar[tuple[str, ...] | None] = None
    # Where reference_logps come from: the student's own initialisation, or the teacher.
    reference_model: ClassVar[str] = "init"
    # A method that continues from another method's student (same seed), or None for the student init; a recipe
    # entry's `starts_from` option sets it for any method (core/recipe.py START), to give such a method a control.
    starts_from: ClassVar[str | None] = None
    # The cell cost field (a count, core/train.py TrainResult) that is 0 when the mechanism the method's claim is
    # about never engaged: on_policy_steps for a schedule of student samples that may never fire. A claim whose
    # better row has it at 0 in a seed is no verdict (leaderboards/claims.py); None: nothing can stay off.
    engaged_by: ClassVar[str | None] = None
    # Bumped when the loss changes for the same hyperparameters, so cells trained with the old loss are
    # not reused (part of the cell key from 2 on; version 1 keeps the keys cells had before it existed).
    loss_version: ClassVar[int] = 1
    # Losses that honour budget.loss_chunk_size (batch["chunk_size"]): they compute from the LM head's
    # inputs in chunks, never the full logits; the recipe check refuses the setting for the others.
    supports_chunked_loss: ClassVar[bool] = False
    # Methods that train on examples they make themselves from their data (methods/llm/hooks.py
    # `MakesExamples`): signals cached or precomputed for the given data do not apply to them.
    generates_examples: ClassVar[bool] = False
    # The options a recipe's `tune:` block searches for this method besides the learning rate (core/tune.py),
    # each with its choices: the hyperparameters the paper tunes, around its default. Empty: the learning
    # rate alone.
    search_space: ClassVar[dict[str, tuple[Any, ...]]] = {}

    @property
    def uses_teacher(self) -> bool:
        return ("teacher_logits" in self.needs or "teacher_features" in self.needs
                or ("reference_logps" in self.needs and self.reference_model == "teacher"))

    @property
    def source_teachers(self) -> tuple[str, ...]:
        """Models the method distils from besides the recipe's teacher (multi-source distillation), as model
        references; the harness loads each one frozen, as role ``source:<ref>``, and keys cells on its weights."""
        return ()

    def check(self) -> list[str]:
        """Constraints between fields that types cannot say; one 'field: problem' line each."""
        return []

    # --- The loss ------------------------------------------------------------------------------------------
    @abstractmethod
    def loss(self, student: torch.nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The method's named loss terms on one batch; the harness sums and logs them."""

    # --- Hooks of the train loop, in the order it calls them -------------------------------------------
    def prepare(self, run: TrainRun) -> None:
        """Once before `training_module` (again on resume; `run.student` is not set yet): for what a method
        fits on the frozen models and the training data before training (LELP's projections, a source
        selection, SPO's key-content tokens). It must be deterministic given the run, since a resumed run
        calls it again."""

    def training_steps(self, budget: Budget) -> int:
        """The optimizer steps the method takes: the budget's, the same for every method; 0 for a method that
        changes how the student samples, not its weights (diversity distillation's hybrid inference)."""
        return budget.steps

    def training_module(self, student: torch.nn.Module) -> torch.nn.Module:
        """What the optimizer trains: the student, or a module around it with the method's own
        trainable parts (DHKD's auxiliary head). Built after the run's seed is set; checkpointed whole."""
        return student

    def moving_models(self, run: TrainRun) -> dict[str, torch.nn.Module]:
        """The frozen models (by role) that the method changes while training: the harness checkpoints
        them with the student, and computes nothing from them ahead of time."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`'s output before the first step; an empty dict resets the method for a fresh run."""

    def before_step(self, run: TrainRun) -> list[dict[str, Any]]:
        """The micro-batches step `run.step` trains on: by default the step's draw from the training data
        (`run.batches()`). A method may draw from other examples, replace or extend the batches (the
        student's samples) and mark them; one that trains on sampled data sets `run.on_policy`."""
        return run.batches()

    def after_step(self, run: TrainRun) -> dict[str, float]:
        """After the optimizer step `run.step`: what follows it (a reference moved toward the student).
        Returns quantities measured for the log (logged, not optimised), or {}."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """What a stateful method carries from step to step (ADPO's KL window), JSON-serialisable;
        the harness checkpoints it with the run after every step, so a resumed run continues exactly."""
        return {}

    def trained_model(self, module: torch.nn.Module) -> torch.nn.Module:
        """The model saved and scored once training ends (the student inside `training_module`'s module)."""
        return module


class Staged:
    """Mixin for methods whose steps are split into `stages` equal stages (curricula, rounds,
    iterations): every batch carries the current stage (0-based) as batch["stage"], and `on_stage`
    runs before the first step of each stage."""

    stages: ClassVar[int] = 1

    def stage(self, run: TrainRun, step: int | None = None) -> int:
        """The stage of `step` (default: the current one)."""
        return (run.step if step is None else step) * self.stages // run.budget.steps

    def on_stage(self, run: TrainRun, stage: int) -> None:
        """Before the first step of stage `stage`, and before the first step of a resumed run (whatever
        stage it resumes in): it must leave alone what the method's restored state already holds."""

    def enter_stage(self, run: TrainRun) -> int:
        """The current stage, once `on_stage` has run when the step starts one (or starts this process)."""
        stage = self.stage(run)
        if run.step == run.first_step or stage != self.stage(run, run.step - 1):
            self.on_stage(run, stage)
        return stage

    def before_step(self, run: TrainRun) -> list[dict[str, Any]]:
        stage = self.enter_stage(run)
        return mark_stage(super().before_step(run), stage)


def mark_stage(batches: list[dict[str, Any]], stage: int) -> list[dict[str, Any]]:
    """`batches`, each with batch["stage"] = `stage` (what a staged loss reads)."""
    for batch in batches:
        batch["stage"] = stage
    return batches


def sequence(batch: dict[str, Any], side: str) -> dict[str, Any]:
    """One sequence of a preference batch ('chosen', 'rejected', 'sample') as an SFT-style batch:
    input_ids, attention_mask, labels and whatever signals were computed on it."""
    prefix = f"{side}_"
    return {key.removeprefix(prefix): value for key, value in batch.items() if key.startswith(prefix)}


def ranked_count(batch: dict[str, Any]) -> int:
    """How many ranked responses (sequences rank0_, rank1_, ...) a ranked-list batch holds."""
    return sum(1 for key in batch if key.startswith("rank") and key.endswith("_input_ids"))


def token_mean(per_token: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean of a [B, T] per-token loss over the positions whose label is not -100."""
    mask = labels != -100
    return (per_token * mask).sum() / mask.sum().clamp(min=1)


def log_probs(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    return torch.log_softmax(upcast(logits) / temperature, dim=-1)


def mixture_logp(weight_logp: torch.Tensor, other_logp: torch.Tensor, alpha: float) -> torch.Tensor:
    """log(α·p + (1−α)·q) from log p and log q, stable for tiny probabilities (DistiLLM's skew KLs)."""
    if alpha == 1:
        return weight_logp
    return torch.logaddexp(weight_logp + math.log(alpha) if alpha > 0 else torch.full_like(weight_logp, -math.inf),
                           other_logp + math.log1p(-alpha))
