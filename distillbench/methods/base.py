"""The method contract.

A method is a registered dataclass: its fields are the paper's hyperparameters
with the paper's defaults. It declares the signals it needs, and `loss` returns
its named loss terms; the harness sums them, logs each one, and owns the loop.
The arithmetic lives in pure functions beside each method.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch

from distillbench.core.registry import METHODS

# Signals the harness can provide in a batch, beside the tokenized examples:
#   teacher_logits            [B, T-1, V] the teacher's next-token logits on the same tokens, for every
#                             sequence of the batch ({prefix}teacher_logits: '', chosen_, rejected_, sample_)
#   reference_teacher_logits  the same from the aligned teacher's reference (recipe reference_teacher)
#   reference_logps           reference_{chosen,rejected}_logps, [B] summed response log-probs (preference
#                             data), and reference_{chosen,rejected}_mean_logps
#   validation                not in the batch: held-out examples (the data's dev split) for a schedule
#                             that watches the validation loss, or for `measure`
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
    needs: ClassVar[tuple[str, ...]] = ()
    # What the loss averages over inside a batch, so accumulation can weight micro-batches:
    # "tokens" (token-level losses) or "examples" (sequence-level losses such as DPO).
    normalize_by: ClassVar[str] = "tokens"
    # The examples a method trains on: "sft" (prompt, response) or "preference" (prompt, chosen, rejected).
    data_kind: ClassVar[str] = "sft"
    # The sequences of a batch that logit signals are computed on ('' for sft data; 'chosen',
    # 'rejected', 'sample' for preference data); None: all of them.
    logit_sequences: ClassVar[tuple[str, ...] | None] = None
    # Where reference_logps come from: the student's own initialisation, or the teacher.
    reference_model: ClassVar[str] = "init"
    # A method that continues from another method's student (same seed), or None for the student init.
    starts_from: ClassVar[str | None] = None
    # Bumped when the loss changes for the same hyperparameters, so cells trained with the old loss are
    # not reused (part of the cell key from 2 on; version 1 keeps the keys cells had before it existed).
    loss_version: ClassVar[int] = 1

    @property
    def uses_teacher(self) -> bool:
        return ("teacher_logits" in self.needs or "teacher_features" in self.needs
                or ("reference_logps" in self.needs and self.reference_model == "teacher"))

    def training_module(self, student: torch.nn.Module) -> torch.nn.Module:
        """What the optimizer trains: the student, or a module around it with the method's own
        trainable parts (DHKD's auxiliary head). Built after the run's seed is set; checkpointed whole."""
        return student

    def trained_model(self, module: torch.nn.Module) -> torch.nn.Module:
        """The model saved and scored once training ends (the student inside `training_module`'s module)."""
        return module

    @property
    def source_teachers(self) -> tuple[str, ...]:
        """Models the method distils from besides the recipe's teacher (multi-source distillation), as model
        references; the harness loads each one frozen, as role ``source:<ref>``, and keys cells on its weights."""
        return ()

    def prepare(self, frozen: dict[str, torch.nn.Module], examples: Any, seed: int, tokenizer: Any = None) -> None:
        """Called by the train loop once before `training_module` (again on resume), with the frozen models,
        the training data and the tokenizer (None for images): for what a method fits on them before training
        (LELP's projections, a source selection, SPO's key-content tokens). It must be deterministic given its
        arguments, since a resumed run calls it again."""

    @abstractmethod
    def loss(self, student: torch.nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The method's named loss terms on one batch; the harness sums and logs them."""

    def on_policy_probability(self, step: int) -> float:
        """Probability that step `step` trains on the student's own samples (0: always the dataset)."""
        return 0.0

    # Methods whose losses honour budget.loss_chunk_size (the harness puts it into every batch as
    # batch["chunk_size"]): they compute from the LM head's inputs in chunks, never the full logits.
    supports_chunked_loss: ClassVar[bool] = False

    # Curriculum methods split the steps into this many equal stages; the harness puts the
    # current stage (0-based) into every batch as batch["stage"].
    stages: ClassVar[int] = 1
    # Methods that move their reference while training (Curry-DPO's iterations, ADPO's EMA
    # anchor) set this and implement `update_reference`; the harness checkpoints the reference.
    updates_reference: ClassVar[bool] = False

    def update_reference(self, reference: torch.nn.Module, student: torch.nn.Module, steps_done: int,
                         total_steps: int) -> None:
        """Called after every optimizer step, with the frozen reference and the student."""

    def state_dict(self) -> dict[str, Any]:
        """What a stateful method carries from step to step (ADPO's KL window), JSON-serialisable;
        the harness checkpoints it with the run, so a resumed run continues exactly."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`'s output; an empty dict resets the method for a fresh run."""

    # Methods that make their own training examples with the current student at the start of
    # every stage (MCTS-DPO's search) set this and implement `make_examples`; their data
    # kind is "problems" (records with an answer to check).
    generates_examples: ClassVar[bool] = False

    def make_examples(self, student, tokenizer, problems: list[dict], seed: int, stage: int,
                      frozen: dict[str, torch.nn.Module]) -> list[dict]:
        raise TypeError(f"{type(self).__name__} trains on the data it is given; it does not generate examples")

    # The model on-policy steps sample from: the student (GKD, DistiLLM) or the teacher
    # (online teacher data, as in the teacher-hacking setup).
    sample_model: ClassVar[str] = "student"
    # Steps between `measure` calls (0: never); the values go to the training log.
    measure_every: ClassVar[int] = 0

    def measure(self, student, frozen: dict[str, torch.nn.Module], validation: list[dict], pad_id: int
                ) -> dict[str, float]:
        """Quantities tracked over training on the validation examples (logged, not optimised)."""
        return {}

    def off_policy_schedule(self):
        """A stateful schedule that replaces `on_policy_probability` (DistiLLM's adaptive one), or None."""
        return None

    # Steps between validation losses for such a schedule; None: once per epoch of the training data.
    validate_every: ClassVar[int | None] = None

    # Sampling settings of on-policy steps.
    sample_temperature: ClassVar[float] = 1.0
    sample_max_new_tokens: ClassVar[int] = 128

    def check(self) -> list[str]:
        """Constraints between fields that types cannot say; one 'field: problem' line each."""
        return []


class SamplingFields:
    """Mixin for methods whose `temperature` and `max_new_tokens` fields set how responses are
    sampled on on-policy steps."""

    @property
    def sample_temperature(self) -> float:
        return self.temperature

    @property
    def sample_max_new_tokens(self) -> int:
        return self.max_new_tokens


def upcast(tensor: torch.Tensor) -> torch.Tensor:
    """Half-precision logits to fp32 before softmax (fp32 and fp64 stay as they are)."""
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


def sequence(batch: dict[str, Any], side: str) -> dict[str, Any]:
    """One sequence of a preference batch ('chosen', 'rejected', 'sample') as an SFT-style batch:
    input_ids, attention_mask, labels and whatever signals were computed on it."""
    prefix = f"{side}_"
    return {key.removeprefix(prefix): value for key, value in batch.items() if key.startswith(prefix)}


def ranked_count(batch: dict[str, Any]) -> int:
    """How many ranked responses (sequences rank0_, rank1_, ...) a ranked-list batch holds."""
    return sum(1 for key in batch if key.startswith("rank") and key.endswith("_input_ids"))


def response_logits(model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    """Logits that predict each next token: position t scores token t+1."""
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]


def shifted_labels(batch: dict[str, Any]) -> torch.Tensor:
    """Labels aligned with `response_logits`; -100 marks prompt and padding."""
    return batch["labels"][:, 1:]


def sequence_logps(model: torch.nn.Module, batch: dict[str, Any], side: str | None = None,
                   average: bool = False, with_counts: bool = False):
    """[B] summed (or, with `average`, per-token mean) log-probs of the response tokens;
    `side` selects 'chosen'/'rejected' of a preference batch. With `with_counts`, also the
    [B] number of response tokens (so one forward pass gives both the sum and the mean).
    With batch["chunk_size"], computed from the LM head's inputs in chunks (same values)."""
    prefix = f"{side}_" if side else ""
    labels = batch[f"{prefix}labels"][:, 1:]
    mask = labels != -100
    if batch.get("chunk_size"):
        from distillbench.methods.llm.chunked import chunked_token_logps, lm_head_inputs

        hidden, weight, bias = lm_head_inputs(model, batch, side)
        picked = chunked_token_logps(hidden, weight, labels, bias, chunk_size=batch["chunk_size"])
    else:
        logits = model(input_ids=batch[f"{prefix}input_ids"], attention_mask=batch[f"{prefix}attention_mask"]).logits
        logps = torch.log_softmax(upcast(logits[:, :-1]), dim=-1)
        picked = torch.gather(logps, 2, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    total = (picked * mask).sum(-1)
    counts = mask.sum(-1).clamp(min=1)
    result = total / counts if average else total
    return (result, counts) if with_counts else result


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
