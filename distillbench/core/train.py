"""The one training loop every method runs through (accelerate), for language models and image classifiers.

The harness owns data order, devices, precision, accumulation, optimizer, checkpoints and
the NaN guard; a method only returns its named loss terms. Data order is a pure
function of (seed, step), so a run resumed from a checkpoint sees exactly the
batches an uninterrupted run would have seen.

What a batch holds is the business of a batching object: `TokenBatching` (the default)
collates tokenized examples and adds logit signals; `distillbench.kinds.image_classifier.images.ImageBatching`
collates augmented images and labels and adds the teacher's logits and features. Everything
else (order, accumulation, optimizer, schedule, checkpoints, NaN guard, log) is shared.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from transformers import get_scheduler

from distillbench.methods.base import sequence_logps

from distillbench.core.checkpoint import load_checkpoint, save_checkpoint
from distillbench.kinds.text_lm.data import collate, sequence_prefixes
from distillbench.core.errors import CellFailure, NonFiniteError, UserInputError
from distillbench.kinds.text_lm.onpolicy import is_on_policy_step, with_samples
from distillbench.core.progress import progress
from distillbench.core.recipe import Budget
from distillbench.kinds.text_lm.topk_cache import ReferenceLogps, SignalCache, reference_sides


@dataclass
class TrainResult:
    steps: int
    wall_seconds: float
    teacher_forwards: int
    trained_parameters: int
    peak_memory_mb: float
    final_terms: dict[str, float] = field(default_factory=dict)
    precision: str = "fp32"
    device: str = "cpu"
    on_policy_steps: int = 0
    measures: dict[str, float] = field(default_factory=dict)
    tokens: int = 0  # non-padding tokens (images, for classifiers) of everything the student trained on
    unit: str = "tokens"  # what `tokens` counts
    model: Any = None  # the model to save and score (`Method.trained_model` of what was trained)


# With group_by_length, examples are sorted by length within windows of this many batches,
# so a batch pads little while the order of batches stays random (as HF's group_by_length).
LENGTH_GROUP_BATCHES = 50


@functools.lru_cache(maxsize=4)
def _epoch_batches(lengths: tuple[int, ...], batch_size: int, seed: int, epoch: int,
                   group_by_length: bool) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    if len(order) < batch_size:  # fewer examples than one batch: every step sees all of them
        return [order]
    order = order[: len(order) - len(order) % batch_size]  # the dropped remainder is random, not the shortest
    window = batch_size * (LENGTH_GROUP_BATCHES if group_by_length else 1)
    batches = []
    for start in range(0, len(order), window):
        group = sorted(order[start:start + window], key=lambda i: -lengths[i])
        batches += [group[i:i + batch_size] for i in range(0, len(group), batch_size)]
    shuffle = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffle]


def example_indices(lengths: tuple[int, ...], batch_size: int, seed: int, step: int,
                    group_by_length: bool = False) -> list[int]:
    """The examples of optimizer step `step` (0-based), a pure function of (lengths, seed, step):
    each epoch is a seeded permutation cut into batches (optionally grouped by length) in random order."""
    per_epoch = max(1, len(lengths) // batch_size)
    epoch, position = divmod(step, per_epoch)
    batches = _epoch_batches(lengths, batch_size, seed, epoch, group_by_length)
    return batches[position % len(batches)]


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


def _generate_examples(method, student, tokenizer, problems: list[dict], seed: int, stage: int, frozen: dict,
                       state: dict, step: int) -> None:
    """Self-generated data (MCTS-DPO's search): made at each stage start, kept in the checkpoint state."""
    state["examples"] = method.make_examples(student, tokenizer, problems, seed, stage, frozen)
    state["examples_stage"] = stage
    if not state["examples"]:
        raise CellFailure(step + 1, f"stage {stage} produced no training examples")


def consecutive_parts(indices: list[int], budget: Budget) -> list[list[int]]:
    """A step's examples cut into `gradient_accumulation` consecutive micro-batches."""
    size = math.ceil(max(budget.batch_size, len(indices)) / budget.gradient_accumulation)
    return [indices[start:start + size] for start in range(0, len(indices), size)]


class TokenBatching:
    """Batches of tokenized examples (the LLM methods'): collated with padding, logit signals added."""

    unit = "tokens"

    def __init__(self, pad_id: int):
        self.pad_id = pad_id
        self.reference_logps: ReferenceLogps | None = None  # set by `train` when the method's reference is fixed

    def lengths(self, examples: list[dict]) -> tuple[int, ...]:
        return tuple(_length(e) for e in examples)

    def step_indices(self, lengths: tuple[int, ...], batch_size: int, seed: int, step: int,
                     group_by_length: bool = False) -> list[int]:
        # Sorted by length, so the micro-batches cut from it pad little.
        return sorted(example_indices(lengths, batch_size, seed, step, group_by_length), key=lambda i: lengths[i])

    split_step = staticmethod(consecutive_parts)  # the indices are sorted by length: each part pads little

    def collate(self, examples: list[dict], indices: list[int], seed: int, step: int, part: int, device) -> dict:
        return {**{k: v.to(device) for k, v in collate([examples[i] for i in indices], self.pad_id).items()},
                "example_index": indices}  # where cached teacher signals are looked up

    def add_signals(self, batch: dict, method, frozen: dict, cache: SignalCache | None = None) -> int:
        return add_signals(batch, method.needs, frozen, method.logit_sequences, cache, self.reference_logps)

    def count(self, batch: dict) -> int:
        return sum(int(batch[key].sum()) for key in batch if key.endswith("attention_mask"))

    def weight_count(self, batch: dict, normalize_by: str) -> int:
        if normalize_by == "tokens":
            return sum(int((v[:, 1:] != -100).sum()) for k, v in batch.items() if k.endswith("labels"))
        return len(next(iter(batch.values())))


def _micro_batches(examples, lengths: tuple[int, ...], budget: Budget, seed: int, step: int, batching,
                   device) -> list[dict]:
    """The collated micro-batches of optimizer step `step`.

    The batching cuts the step (`split_step`): token batches into consecutive runs of similar
    lengths, which pad less; the accumulated gradient is the same as one batch's whatever the
    split, because micro-batches are weighted by their tokens (or examples), for every loss that
    is a mean over the step's tokens (or examples). A loss averaging separate parts (DCKD's
    chosen and rejected tokens, ADPA's chosen and sample tokens, Curry-DPO's untied pairs) gets
    a close approximation.
    """
    indices = batching.step_indices(lengths, budget.batch_size, seed, step, budget.group_by_length)
    return [batching.collate(examples, part_indices, seed, step, part, device)
            for part, part_indices in enumerate(batching.split_step(indices, budget))]


def _scheduled_batches(schedule, student, tokenizer, method, batches: list[dict], seed: int, step: int,
                       total: int) -> list[dict]:
    """The step's batches as the adaptive schedule chooses: the data, fresh student samples, or replayed ones."""
    choice = schedule.choose(seed, step, total)
    schedule.last_choice = choice
    if choice == "fresh":
        batches = [with_samples(student, tokenizer, batch, max_new_tokens=method.sample_max_new_tokens,
                                temperature=method.sample_temperature) for batch in batches]
        for batch in batches:
            schedule.remember(batch)
    elif choice == "replay":
        device = batches[0]["input_ids"].device
        batches = [{k: v.to(device) for k, v in collate(schedule.replay(seed, step + index, len(batch["input_ids"])),
                                                          tokenizer.pad_token_id).items()}
                   for index, batch in enumerate(batches)]
    return batches


def _length(example: dict) -> int:
    return max(len(v) for k, v in example.items() if k.endswith("input_ids"))


def _accumulate_gradients(accelerator, method, student, batches: list[dict], frozen: dict, step: int,
                          state: dict, cache: SignalCache | None = None, batching=None) -> dict[str, float]:
    """Backward through every micro-batch of one optimizer step; returns the step's loss terms.

    Raises NonFiniteError naming the step and the term when a loss term is NaN or inf.
    """
    batching = batching or TokenBatching(0)
    terms: dict[str, float] = {}
    weights = _micro_batch_weights(batches, method.normalize_by, batching)
    # A micro-batch without a label token (every response cut off by max_length; length-sorted steps put
    # those together) has weight 0 and a mean over no tokens (NaN): it is skipped, not run.
    counted = [number for number, weight in enumerate(weights) if weight > 0]
    for number, (batch, weight) in enumerate(zip(batches, weights)):
        if weight == 0:
            continue
        state["teacher_forwards"] += batching.add_signals(batch, method, frozen, cache)
        state["tokens"] = state.get("tokens", 0) + batching.count(batch)
        last = number == counted[-1]  # gradients are synchronised across processes once, at the end
        with (contextlib.nullcontext() if last else accelerator.no_sync(student)), accelerator.autocast():
            named = method.loss(student, batch)
            loss = sum(named.values()) * weight
        for name, value in named.items():
            if not torch.isfinite(value):
                raise NonFiniteError(step + 1, f"loss term {name!r} ({value.item()})")
            terms[name] = terms.get(name, 0.0) + value.item() * weight
        accelerator.backward(loss)
    return terms


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines past the checkpoint we resume from (a killed run may have logged further)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in kept))


# Logit signals: the name a method lists in `needs` -> the frozen model (by role) that gives it.
LOGIT_SIGNALS = {"teacher_logits": "teacher", "reference_teacher_logits": "reference_teacher"}


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


def _micro_batch_weights(batches: list[dict], normalize_by: str, batching=None) -> list[float]:
    """Weights that make accumulated micro-batch means equal the mean over the whole step.

    A loss averaged over the tokens (or examples) of its micro-batch is weighted by that
    micro-batch's share of the step's tokens (or examples), so gradient accumulation gives
    the same gradient as one large batch (the pitfall of trl #4719).
    """
    batching = batching or TokenBatching(0)
    counts = [batching.weight_count(b, normalize_by) for b in batches]
    total = sum(counts) or 1
    return [count / total for count in counts]


def _reference_is_fixed(method, frozen: dict, examples: list[dict], budget: Budget) -> bool:
    """Whether the reference's log-probs of the training data can be computed once, before training:
    the method needs them, its reference never changes, it trains on the given examples (not on
    ones it generates), and the run covers them at least once (else the live path costs less)."""
    return ("reference_logps" in method.needs and "reference" in frozen and not method.updates_reference
            and not method.generates_examples and budget.steps * budget.batch_size >= len(examples))


def _effective_precision(requested: str) -> str:
    # Mixed precision is a GPU feature here; on CPU we train in fp32 and record that.
    if not torch.cuda.is_available():
        return "fp32"
    return requested


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def make_optimizer(parameters, budget: Budget) -> torch.optim.Optimizer:
    """AdamW (the LLM default) or SGD with momentum (the CIFAR recipe), with the budget's weight decay."""
    if budget.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=budget.learning_rate, momentum=budget.momentum,
                               weight_decay=budget.weight_decay)
    return torch.optim.AdamW(parameters, lr=budget.learning_rate, weight_decay=budget.weight_decay)


def make_scheduler(optimizer, budget: Budget):
    """Linear warm-up, then cosine decay to 0, a step decay (×lr_decay at each of lr_milestones), or constant."""
    if budget.lr_schedule == "cosine":
        return get_scheduler("cosine", optimizer, num_warmup_steps=budget.warmup_steps,
                             num_training_steps=budget.steps)
    milestones = sorted(budget.lr_milestones) if budget.lr_schedule == "multistep" else []

    def factor(step: int) -> float:
        # the same linear warm-up as transformers' cosine schedule: 0 at step 0, the full rate at warmup_steps
        warm = min(1.0, step / budget.warmup_steps) if budget.warmup_steps else 1.0
        return warm * budget.lr_decay ** sum(step >= milestone for milestone in milestones)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train(method, student, tokenizer, examples, budget: Budget, seed: int, checkpoint_dir: Path,
          frozen: dict[str, torch.nn.Module] | None = None, log_path: Path | None = None,
          description: str = "train", validation: list[dict] | None = None,
          signal_cache: SignalCache | None = None, batching=None) -> TrainResult:
    """Train `student` in place with `method` for `budget.steps` steps; resumes from `checkpoint_dir`.

    `frozen` holds the models the method's signals come from, by role: "teacher"
    (teacher_logits), "reference" (reference_logps), "reference_teacher". `validation`
    holds the examples of methods whose schedule watches the validation loss (DistiLLM).
    `signal_cache` serves the teacher's logits of `examples` (top-k, see kinds/text_lm/topk_cache.py).
    `batching` makes the batches (default: tokenized examples; an `ImageBatching` for classifiers,
    whose `examples` is then the image dataset and `tokenizer` None). The method may train a module
    around the student (extra heads, `Method.training_module`); `TrainResult.model` is what to save.
    """
    frozen = frozen or {}
    own_batching = batching is None  # token batches made here; a caller's batching brings its own signals
    batching = batching or TokenBatching(tokenizer.pad_token_id)
    schedule = method.off_policy_schedule()
    if "validation" in method.needs and not validation:
        raise UserInputError("this method watches held-out data while training: it needs validation examples")
    precision = _effective_precision(budget.precision)
    accelerator = Accelerator(mixed_precision={"fp32": "no"}.get(precision, precision), cpu=not torch.cuda.is_available())
    set_seed(seed)
    method.prepare(frozen, examples, seed, tokenizer)
    student = method.training_module(student)  # after seeding: a method's extra heads start the same every run
    optimizer = make_optimizer(student.parameters(), budget)
    scheduler = make_scheduler(optimizer, budget)
    # A reference the method updates while training is checkpointed with the student.
    mutable = {"reference": frozen["reference"]} if method.updates_reference else {}
    state = load_checkpoint(checkpoint_dir, student, optimizer, scheduler, mutable) or {
        "step": 0, "teacher_forwards": 0, "wall_seconds": 0.0}
    if schedule is not None and "schedule" in state:
        schedule.load_state_dict(state["schedule"])
    method.load_state_dict(state.get("method", {}))
    validate_every = method.validate_every or max(1, len(examples) // budget.batch_size)  # default: each epoch
    student, optimizer = accelerator.prepare(student, optimizer)
    for model in frozen.values():
        model.to(accelerator.device).eval().requires_grad_(False)
    if own_batching and _reference_is_fixed(method, frozen, examples, budget):
        batching.reference_logps = ReferenceLogps.compute(frozen["reference"], examples, tokenizer.pad_token_id,
                                                          budget.batch_size, budget.loss_chunk_size)
        if state["step"] == 0:  # a resumed run computes them again, but counts them once, as an uninterrupted one
            state["teacher_forwards"] += batching.reference_logps.passes
    student.train()
    lengths = () if method.generates_examples else batching.lengths(examples)
    generated, generated_lengths = None, ()  # self-generated examples of the current stage
    start_time = time.perf_counter() - state["wall_seconds"]
    terms: dict[str, float] = {}
    if log_path:
        _truncate_log(log_path, state["step"])
    log = open(log_path, "a", buffering=1) if log_path else None  # line-buffered: a kill loses no logged step
    try:
        with progress(total=budget.steps, description=description) as bar:
            bar.advance(state["step"])
            for step in range(state["step"], budget.steps):
                stage = step * method.stages // budget.steps  # curriculum methods: equal shares of the steps
                working, working_lengths = examples, lengths
                if method.generates_examples:
                    if state.get("examples_stage") != stage:
                        _generate_examples(method, accelerator.unwrap_model(student), tokenizer, examples, seed,
                                           stage, frozen, state, step)
                    if generated is not state["examples"]:  # lengths once per stage, not once per step
                        generated, generated_lengths = state["examples"], tuple(_length(e) for e in state["examples"])
                    working, working_lengths = generated, generated_lengths
                batches = _micro_batches(working, working_lengths, budget, seed, step, batching, accelerator.device)
                if schedule is not None:
                    if step % validate_every == 0:
                        schedule.observe(validation_nll(student, validation, tokenizer.pad_token_id))
                    batches = _scheduled_batches(schedule, accelerator.unwrap_model(student), tokenizer, method,
                                                 batches, seed, step, budget.steps)
                    state["schedule"] = schedule.state_dict()
                    on_policy = schedule.last_choice != "data"
                else:
                    on_policy = is_on_policy_step(method.on_policy_probability(step), seed, step)
                    if on_policy:
                        sampler = frozen["teacher"] if method.sample_model == "teacher" else accelerator.unwrap_model(student)
                        batches = [with_samples(sampler, tokenizer, batch, max_new_tokens=method.sample_max_new_tokens,
                                                temperature=method.sample_temperature) for batch in batches]
                state["on_policy_steps"] = state.get("on_policy_steps", 0) + on_policy
                for batch in batches:
                    batch["stage"] = stage
                    if budget.loss_chunk_size:
                        batch["chunk_size"] = budget.loss_chunk_size
                terms = _accumulate_gradients(accelerator, method, student, batches, frozen, step, state,
                                              signal_cache if not method.generates_examples else None, batching)
                # No clipping (max_grad_norm null) still measures the norm, for the NaN guard and the log.
                grad_norm = accelerator.clip_grad_norm_(student.parameters(), budget.max_grad_norm or math.inf)
                # With fp16 an overflowing step is ordinary: accelerate's loss scaler skips it and lowers the
                # scale. Without a scaler a non-finite gradient is a failure (the loss terms were finite).
                if not torch.isfinite(torch.as_tensor(grad_norm)) and getattr(accelerator, "scaler", None) is None:
                    raise NonFiniteError(step + 1, f"gradient norm ({float(grad_norm)})")
                used_lr = scheduler.get_last_lr()[0]  # the rate this step trained at (the log's "lr")
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                if method.updates_reference:
                    method.update_reference(frozen["reference"], accelerator.unwrap_model(student), step + 1,
                                            budget.steps)
                if method_state := method.state_dict():
                    state["method"] = method_state
                state["step"] = step + 1
                state["wall_seconds"] = time.perf_counter() - start_time
                measures = {}
                if method.measure_every and ((step + 1) % method.measure_every == 0 or step + 1 == budget.steps):
                    measures = method.measure(accelerator.unwrap_model(student), frozen, validation,
                                              tokenizer.pad_token_id)
                    state["measures"] = measures
                if log:
                    log.write(json.dumps({"step": step + 1, "lr": used_lr,
                                          "grad_norm": float(grad_norm), **terms,
                                          **({"measures": measures} if measures else {})}) + "\n")
                bar.advance(1, info=" ".join(f"{k}={v:.3f}" for k, v in terms.items()))
                if state["step"] % budget.checkpoint_every == 0 or state["step"] == budget.steps:
                    save_checkpoint(checkpoint_dir, accelerator.unwrap_model(student), optimizer, scheduler, state,
                                    mutable)
    finally:
        if log:
            log.close()
    trained = sum(p.numel() for p in student.parameters() if p.requires_grad)
    return TrainResult(state["step"], state["wall_seconds"], state["teacher_forwards"], trained,
                       _peak_memory_mb(accelerator.device), terms, precision, str(accelerator.device),
                       state.get("on_policy_steps", 0), state.get("measures", {}), state.get("tokens", 0),
                       batching.unit, method.trained_model(accelerator.unwrap_model(student)))

