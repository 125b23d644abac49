"""The one training loop every method runs through (accelerate), whatever the kind of model.

The loop owns the loop and nothing else: seeding, devices and precision, the optimizer and its
schedule, checkpoints, the data order, gradient accumulation, the NaN guard, the log and the
progress bar. Data order is a pure function of (seed, step), so a run resumed from a checkpoint
sees exactly the batches an uninterrupted run would have seen.

Two objects bring everything else:
* the batching (a `Batching`, provided by the kind: kinds/<kind>/) turns example indices into
  batches and adds the frozen models' signals to them;
* the method (distillbench.methods.base.Method) returns its named loss terms and acts through its
  hooks, which see the run as a `TrainRun`: `prepare`, `before_step` (the step's batches),
  `after_step` (what follows an optimizer step), `moving_models` (frozen models it changes) and
  `state_dict` / `load_state_dict` (what it carries from step to step).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import resource
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from transformers import get_scheduler

from distillbench.core.checkpoint import load_checkpoint, save_checkpoint
from distillbench.core.errors import NonFiniteError
from distillbench.core.progress import progress
from distillbench.core.recipe import Budget


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
    tokens: int = 0  # what the batching counts (non-padding tokens, images, ...) of everything the student trained on
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


def consecutive_parts(indices: list[int], budget: Budget) -> list[list[int]]:
    """A step's examples cut into `gradient_accumulation` consecutive micro-batches."""
    size = math.ceil(max(budget.batch_size, len(indices)) / budget.gradient_accumulation)
    return [indices[start:start + size] for start in range(0, len(indices), size)]


class Batching(ABC):
    """What a kind gives the loop (kinds/<kind>/): how examples become a step's micro-batches, and the
    signals of the frozen models in them. The defaults draw a step's examples with `example_indices`
    and cut them into consecutive micro-batches."""

    unit = "examples"  # what `count` counts (TrainResult.unit)

    @abstractmethod
    def lengths(self, examples: Any) -> tuple[int, ...]:
        """One length per example (what group_by_length groups by)."""

    def step_indices(self, lengths: tuple[int, ...], batch_size: int, seed: int, step: int,
                     group_by_length: bool = False) -> list[int]:
        return example_indices(lengths, batch_size, seed, step, group_by_length)

    def split_step(self, indices: list[int], budget: Budget) -> list[list[int]]:
        return consecutive_parts(indices, budget)

    def prepare(self, run: TrainRun, method: Any) -> int:
        """Called once before the first step (again on resume), once the frozen models are on the device:
        checks and precomputations. Returns the frozen-model forward passes to count (none on resume)."""
        return 0

    @abstractmethod
    def collate(self, examples: Any, indices: list[int], seed: int, step: int, part: int, device) -> dict:
        """Micro-batch `part` of step `step`: the examples `indices`, on `device`."""

    @abstractmethod
    def add_signals(self, batch: dict, method: Any, frozen: dict[str, torch.nn.Module]) -> int:
        """Put the signals `method.needs` into `batch`; returns the frozen-model forward passes it took."""

    @abstractmethod
    def count(self, batch: dict) -> int:
        """What the batch holds, in `unit`s (TrainResult.tokens)."""

    @abstractmethod
    def weight_count(self, batch: dict, normalize_by: str) -> int:
        """What a loss averaging over `normalize_by` ("tokens" or "examples") averages over in `batch`."""


@dataclass
class TrainRun:
    """What a method's hooks see of the run (see `Method` in distillbench/methods/base.py)."""

    examples: Any  # the training data as the caller gave it
    batching: Batching
    frozen: dict[str, torch.nn.Module]  # the models signals come from, by role ("teacher", "reference", ...)
    budget: Budget
    seed: int
    device: Any = "cpu"
    first_step: int = 0  # the step this process started at: past 0 when it resumed a checkpoint
    step: int = 0  # 0-based: the step about to run (before_step) or just run (after_step)
    student: torch.nn.Module | None = None  # what the optimizer trains, as accelerate prepared it (None in prepare)
    unwrapped: torch.nn.Module | None = None  # the same unwrapped: to sample from, copy, or measure
    on_policy: bool = False  # before_step sets it when the step trains on sampled data (TrainResult.on_policy_steps)
    _lengths: tuple = field(default=(None, ()), repr=False)  # (examples, their lengths): once per list, not per step

    def batches(self, examples: Any = None) -> list[dict]:
        """The collated micro-batches of this step, drawn from `examples` (default: the run's) in the
        run's order. How micro-batches are cut does not change the step's gradient: they are weighted
        by their share of the step's tokens (or examples), for every loss that is a mean over them; a
        loss averaging separate parts (chosen and rejected tokens, say) gets a close approximation."""
        examples = self.examples if examples is None else examples
        if self._lengths[0] is not examples:
            self._lengths = (examples, self.batching.lengths(examples))
        lengths, budget = self._lengths[1], self.budget
        indices = self.batching.step_indices(lengths, budget.batch_size, self.seed, self.step, budget.group_by_length)
        return [self.batching.collate(examples, part_indices, self.seed, self.step, part, self.device)
                for part, part_indices in enumerate(self.batching.split_step(indices, budget))]


@contextlib.contextmanager
def counting_forwards(models):
    """While open, counts the sequences of every forward call of `models` (yields a one-item list).

    A forward over B sequences counts B, as `add_signals` counts its passes. `generate` calls the
    model once per decoding step (the prompt's prefill yields the first token, each later call one
    more), so sampling T tokens for B sequences counts B·T: one per generated token per sequence,
    finished sequences still in the batch included, since their rows are computed too.
    """
    count = [0]

    def hook(module, args, kwargs):
        inputs = next((v for v in (kwargs.get("input_ids"), kwargs.get("inputs_embeds"), *args) if v is not None), ())
        count[0] += len(inputs)

    unique = {id(model): model for model in models}.values()  # a model serving two roles runs once per call
    handles = [model.register_forward_pre_hook(hook, with_kwargs=True) for model in unique]
    try:
        yield count
    finally:
        for handle in handles:
            handle.remove()


def _micro_batch_weights(batches: list[dict], normalize_by: str, batching: Batching) -> list[float]:
    """Weights that make accumulated micro-batch means equal the mean over the whole step.

    A loss averaged over the tokens (or examples) of its micro-batch is weighted by that
    micro-batch's share of the step's tokens (or examples), so gradient accumulation gives
    the same gradient as one large batch (the pitfall of trl #4719).
    """
    counts = [batching.weight_count(b, normalize_by) for b in batches]
    total = sum(counts) or 1
    return [count / total for count in counts]


def _accumulate_gradients(accelerator, method, run: TrainRun, batches: list[dict], state: dict) -> dict[str, float]:
    """Backward through every micro-batch of one optimizer step; returns the step's loss terms.

    Raises NonFiniteError naming the step and the term when a loss term is NaN or inf.
    """
    terms: dict[str, float] = {}
    weights = _micro_batch_weights(batches, method.normalize_by, run.batching)
    # A micro-batch with nothing to average over (every response cut off by max_length; length-sorted steps put
    # those together) has weight 0 and a mean over nothing (NaN): it is skipped, not run.
    counted = [number for number, weight in enumerate(weights) if weight > 0]
    for number, (batch, weight) in enumerate(zip(batches, weights)):
        if weight == 0:
            continue
        state["teacher_forwards"] += run.batching.add_signals(batch, method, run.frozen)
        state["tokens"] = state.get("tokens", 0) + run.batching.count(batch)
        last = number == counted[-1]  # gradients are synchronised across processes once, at the end
        with (contextlib.nullcontext() if last else accelerator.no_sync(run.student)), accelerator.autocast():
            named = method.loss(run.student, batch)
            loss = sum(named.values()) * weight
        for name, value in named.items():
            if not torch.isfinite(value):
                raise NonFiniteError(run.step + 1, f"loss term {name!r} ({value.item()})")
            terms[name] = terms.get(name, 0.0) + value.item() * weight
        accelerator.backward(loss)
    return terms


def _optimizer_step(accelerator, run: TrainRun, optimizer, scheduler, budget: Budget) -> tuple[float, float]:
    """Clip, step and zero the gradients; returns the gradient norm and the rate this step trained at."""
    # No clipping (max_grad_norm null) still measures the norm, for the NaN guard and the log.
    grad_norm = accelerator.clip_grad_norm_(run.student.parameters(), budget.max_grad_norm or math.inf)
    # With fp16 an overflowing step is ordinary: accelerate's loss scaler skips it and lowers the
    # scale. Without a scaler a non-finite gradient is a failure (the loss terms were finite).
    if not torch.isfinite(torch.as_tensor(grad_norm)) and getattr(accelerator, "scaler", None) is None:
        raise NonFiniteError(run.step + 1, f"gradient norm ({float(grad_norm)})")
    used_lr = scheduler.get_last_lr()[0]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(grad_norm), used_lr


@contextlib.contextmanager
def _training_log(path: Path | None, step: int):
    """The JSONL log, line-buffered (a kill loses no logged step), without the lines past `step`
    (a killed run may have logged further than the checkpoint we resume from); None without a path."""
    if path is None:
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in kept))
    with open(path, "a", buffering=1) as log:
        yield log


def _accelerator(budget: Budget) -> tuple[Accelerator, str]:
    """The accelerator and the precision it trains in: mixed precision is a GPU feature here; on CPU
    we train in fp32 and record that."""
    precision = budget.precision if torch.cuda.is_available() else "fp32"
    cpu = not torch.cuda.is_available()
    return Accelerator(mixed_precision={"fp32": "no"}.get(precision, precision), cpu=cpu), precision


def peak_memory_mb(device: torch.device) -> float:
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


def _log_step(log, bar, step: int, used_lr: float, grad_norm: float, terms: dict, measures: dict) -> None:
    """Step `step` (1-based) in the log, at the rate it trained at, and on the progress bar."""
    if log:
        log.write(json.dumps({"step": step, "lr": used_lr, "grad_norm": grad_norm, **terms,
                              **({"measures": measures} if measures else {})}) + "\n")
    bar.advance(1, info=" ".join(f"{k}={v:.3f}" for k, v in terms.items()))


def train(method, student, examples, budget: Budget, seed: int, checkpoint_dir: Path, *, batching: Batching,
          frozen: dict[str, torch.nn.Module] | None = None, log_path: Path | None = None,
          description: str = "train") -> TrainResult:
    """Train `student` in place with `method` for `budget.steps` steps (`Method.training_steps`); resumes from
    `checkpoint_dir`.

    `batching` (the kind's) makes the batches of `examples`; `frozen` holds the models the method's
    signals come from, by role. The method may train a module around the student
    (`Method.training_module`); `TrainResult.model` is what to save.
    """
    run = TrainRun(examples, batching, frozen or {}, budget, seed)
    accelerator, precision = _accelerator(budget)
    set_seed(seed)
    method.prepare(run)
    steps = method.training_steps(budget)  # the budget's, or none for a method that changes sampling, not weights
    module = method.training_module(student)  # after seeding: a method's extra heads start the same every run
    optimizer = make_optimizer(module.parameters(), budget)
    scheduler = make_scheduler(optimizer, budget)
    moving = method.moving_models(run)  # frozen models the method changes are checkpointed with the student
    state = load_checkpoint(checkpoint_dir, module, optimizer, scheduler, moving) or {
        "step": 0, "teacher_forwards": 0, "wall_seconds": 0.0}
    method.load_state_dict(state.get("method", {}))  # an empty dict resets a method object used before
    run.student, optimizer = accelerator.prepare(module, optimizer)
    run.unwrapped, run.device, run.first_step = accelerator.unwrap_model(run.student), accelerator.device, state["step"]
    for model in run.frozen.values():
        model.to(accelerator.device).eval().requires_grad_(False)
    state["teacher_forwards"] += batching.prepare(run, method)  # its precomputations run where the frozen models are
    run.student.train()
    start_time = time.perf_counter() - state["wall_seconds"]
    terms: dict[str, float] = {}
    with _training_log(log_path, state["step"]) as log, progress(total=steps, description=description) as bar:
        bar.advance(state["step"])
        for step in range(state["step"], steps):
            run.step, run.on_policy = step, False
            with counting_forwards(run.frozen.values()) as sampled:  # a frozen model's samples (teacher data)
                batches = method.before_step(run)
            state["teacher_forwards"] += sampled[0]
            state["on_policy_steps"] = state.get("on_policy_steps", 0) + run.on_policy
            terms = _accumulate_gradients(accelerator, method, run, batches, state)
            grad_norm, used_lr = _optimizer_step(accelerator, run, optimizer, scheduler, budget)
            if measures := method.after_step(run):
                state["measures"] = measures
            if method_state := method.state_dict():
                state["method"] = method_state
            state["step"], state["wall_seconds"] = step + 1, time.perf_counter() - start_time
            _log_step(log, bar, step + 1, used_lr, grad_norm, terms, measures)
            if state["step"] % budget.checkpoint_every == 0 or state["step"] == steps:
                save_checkpoint(checkpoint_dir, run.unwrapped, optimizer, scheduler, state, moving)
    trained = sum(p.numel() for p in run.student.parameters() if p.requires_grad)
    return TrainResult(state["step"], state["wall_seconds"], state["teacher_forwards"], trained,
                       peak_memory_mb(accelerator.device), terms, precision, str(accelerator.device),
                       state.get("on_policy_steps", 0), state.get("measures", {}), state.get("tokens", 0),
                       batching.unit, method.trained_model(run.unwrapped))
