"""The train loop's batches of tokenized examples (the language-model methods'), and their signals.

`TokenBatching` is the `Batching` (core/train.py) of language models: it collates tokenized
examples with padding, adds the frozen models' logits and the reference's log-probs a method
needs, and carries what else of a language model the methods' hooks use: the tokenizer (to
sample), the validation examples (for methods that watch a validation loss) and the teacher's
top-k signal cache.
"""

from __future__ import annotations

from typing import Any

import torch

from distillbench.core.errors import UserInputError
from distillbench.core.train import Batching, TrainRun, example_indices
from distillbench.kinds.text_lm.data import collate, sequence_prefixes
from distillbench.kinds.text_lm.logps import sequence_logps
from distillbench.kinds.text_lm.topk_cache import ReferenceLogps, SignalCache, reference_sides

# Logit signals: the name a method lists in `needs` -> the frozen model (by role) that gives it.
LOGIT_SIGNALS = {"teacher_logits": "teacher", "reference_teacher_logits": "reference_teacher"}


class TokenBatching(Batching):
    """Batches of tokenized examples: collated with padding, logit signals added.

    `validation` holds the examples of methods that watch a held-out loss ("validation" in their
    needs: DistiLLM's schedule, teacher hacking's measures); `signal_cache` serves the teacher's
    logits of the training examples (top-k, see topk_cache.py); with `loss_chunk_size` every batch
    carries it as batch["chunk_size"], for the losses that compute from the LM head's inputs in chunks.
    """

    unit = "tokens"

    def __init__(self, tokenizer, *, validation: list[dict] | None = None, signal_cache: SignalCache | None = None,
                 loss_chunk_size: int | None = None):
        self.tokenizer, self.pad_id = tokenizer, tokenizer.pad_token_id
        self.validation, self.signal_cache, self.loss_chunk_size = validation, signal_cache, loss_chunk_size
        self.reference_logps: ReferenceLogps | None = None  # set by `prepare` when the method's reference is fixed
        self.given_examples = True  # whether the run trains on the examples the cache was built on (`prepare`)

    def prepare(self, run: TrainRun, method) -> int:
        if "validation" in method.needs and not self.validation:
            raise UserInputError("this method watches held-out data while training: it needs validation examples")
        # A method that makes its own examples draws none of the given ones: their cached signals do not apply.
        self.given_examples = not method.generates_examples
        self.reference_logps = None
        if not reference_is_fixed(run, method):
            return 0
        self.reference_logps = ReferenceLogps.compute(run.frozen["reference"], run.examples, self.pad_id,
                                                      run.budget.batch_size, self.loss_chunk_size)
        # a resumed run computes them again, but counts them once, as an uninterrupted one
        return self.reference_logps.passes if run.first_step == 0 else 0

    def lengths(self, examples: list[dict]) -> tuple[int, ...]:
        return tuple(max(len(v) for k, v in e.items() if k.endswith("input_ids")) for e in examples)

    def step_indices(self, lengths: tuple[int, ...], batch_size: int, seed: int, step: int,
                     group_by_length: bool = False) -> list[int]:
        # Sorted by length, so the consecutive micro-batches `split_step` cuts from it pad little.
        return sorted(example_indices(lengths, batch_size, seed, step, group_by_length), key=lambda i: lengths[i])

    def collate(self, examples: list[dict], indices: list[int], seed: int, step: int, part: int, device) -> dict:
        return {**{k: v.to(device) for k, v in collate([examples[i] for i in indices], self.pad_id).items()},
                "example_index": indices}  # where cached teacher signals are looked up

    def add_signals(self, batch: dict, method, frozen: dict) -> int:
        # After a method's before_step (whose samples are new batches) and before the signals, which honour it too
        if self.loss_chunk_size:
            batch["chunk_size"] = self.loss_chunk_size
        return add_signals(batch, method.needs, frozen, method.logit_sequences,
                           self.signal_cache if self.given_examples else None, self.reference_logps)

    def count(self, batch: dict) -> int:
        return sum(int(batch[key].sum()) for key in batch if key.endswith("attention_mask"))

    def weight_count(self, batch: dict, normalize_by: str) -> int:
        if normalize_by == "tokens":
            return sum(int((v[:, 1:] != -100).sum()) for k, v in batch.items() if k.endswith("labels"))
        return len(next(iter(batch.values())))

    def validation_nll(self, model) -> float:
        """Mean token NLL of `model` on the validation examples' responses."""
        return validation_nll(model, self.validation, self.pad_id)


def reference_is_fixed(run: TrainRun, method: Any) -> bool:
    """Whether the reference's log-probs of the training data can be computed once, before training:
    the method needs them, its reference never changes, it trains on the given examples (not on
    ones it makes), and the run covers them at least once (else the live path costs less)."""
    return ("reference_logps" in method.needs and "reference" in run.frozen
            and "reference" not in method.moving_models(run) and not method.generates_examples
            and run.budget.steps * run.budget.batch_size >= len(run.examples))


@torch.no_grad()
def validation_nll(model, examples: list[dict], pad_id: int, batch_size: int = 64) -> float:
    """Mean token NLL of `model` on the response tokens of `examples` (eval mode, no gradients)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, len(examples), batch_size):
        batch = {k: v.to(device) for k, v in collate(examples[start:start + batch_size], pad_id).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        labels = batch["labels"][:, 1:]
        total += torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.size(-1)), labels.reshape(-1),
                                                   ignore_index=-100, reduction="sum").item()
        count += int((labels != -100).sum())
    model.train(was_training)
    return total / max(count, 1)


@torch.no_grad()
def add_signals(batch: dict, needs: tuple[str, ...], frozen: dict[str, torch.nn.Module],
                logit_sequences: tuple[str, ...] | None = None, cache: SignalCache | None = None,
                reference_logps: ReferenceLogps | None = None) -> int:
    """Put the signals a method needs into its batch; returns the number of frozen-model forward passes.

    Logit signals are computed for the sequences named in `logit_sequences` (all when None):
    ``teacher_logits`` for an SFT batch, ``chosen_teacher_logits`` / ``rejected_teacher_logits``
    (and ``sample_teacher_logits`` for on-policy samples) for a preference batch. With a
    signal `cache`, the teacher's logits of the dataset's own sequences come from it; with
    `reference_logps`, so do the reference's log-probs.
    """
    forwards = 0
    prefixes = [p for p in sequence_prefixes(batch) if logit_sequences is None or p.rstrip("_") in logit_sequences]
    for signal, role in LOGIT_SIGNALS.items():
        if signal in needs:
            for prefix in prefixes:
                ids = batch[f"{prefix}input_ids"]
                if role == "teacher" and cache is not None and "example_index" in batch and prefix in cache.spans:
                    batch[f"{prefix}{signal}"] = cache.teacher_logits(batch["example_index"], prefix, ids.shape[1],
                                                                      ids.device)
                    continue
                batch[f"{prefix}{signal}"] = frozen[role](input_ids=ids,
                                                          attention_mask=batch[f"{prefix}attention_mask"]).logits[:, :-1]
                forwards += len(ids)
    if "reference_logps" in needs:
        for side in reference_sides(batch):
            if reference_logps is not None and "example_index" in batch:
                batch[f"reference_{side}_logps"] = reference_logps.lookup(side, batch["example_index"],
                                                                          batch[f"{side}_input_ids"].device)
            else:
                batch[f"reference_{side}_logps"] = sequence_logps(frozen["reference"], batch, side)
                forwards += len(batch[f"{side}_input_ids"])
            lengths = (batch[f"{side}_labels"][:, 1:] != -100).sum(-1).clamp(min=1)
            batch[f"reference_{side}_mean_logps"] = batch[f"reference_{side}_logps"] / lengths
    return forwards
