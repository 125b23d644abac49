"""The language-model methods' train-loop hooks, as mixins (see the hooks of `Method`, methods/base.py).

* `OnPolicy`: steps chosen with a probability train on sampled responses (GKD, ADPA, teacher hacking);
* `AdaptiveSampling`: DistiLLM's adaptive off-policy schedule, which watches the validation loss;
* `MakesExamples`: the method makes its training examples at the start of every stage (MCTS-DPO, teacher hacking);
* `MovesReference`: the reference moves while training (Curry-DPO, ADPO), checkpointed with the student.

They reach the language model's tokenizer and validation examples through the run's batching
(kinds/text_lm/batching.py `TokenBatching`). A mixin goes before `Method` in a method's bases.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from distillbench.core.errors import CellFailure
from distillbench.kinds.text_lm.data import collate
from distillbench.kinds.text_lm.onpolicy import AdaptiveOffPolicy, is_on_policy_step, with_samples
from distillbench.methods.base import Staged, mark_stage

if TYPE_CHECKING:
    from distillbench.core.train import TrainRun


class SamplingFields:
    """Mixin for methods whose `temperature` and `max_new_tokens` fields set how responses are
    sampled on on-policy steps."""

    @property
    def sample_temperature(self) -> float:
        return self.temperature

    @property
    def sample_max_new_tokens(self) -> int:
        return self.max_new_tokens

    def sampled(self, model, run: TrainRun, batch: dict) -> dict:
        """`batch` with responses sampled from `model` (onpolicy.with_samples)."""
        return with_samples(model, run.batching.tokenizer, batch, max_new_tokens=self.sample_max_new_tokens,
                            temperature=self.sample_temperature)


class OnPolicy(SamplingFields):
    """Mixin: step `step` trains on responses sampled from `sample_model` with probability
    `on_policy_probability(step)`, a pure function of (seed, step), so a resumed run makes the same
    choices; the others train on the data."""

    # The model on-policy steps sample from: the student (GKD) or the teacher (online teacher data,
    # as in the teacher-hacking setup).
    sample_model: ClassVar[str] = "student"

    def on_policy_probability(self, step: int) -> float:
        """Probability that step `step` trains on sampled responses (0: always the dataset)."""
        return 0.0

    def before_step(self, run: TrainRun) -> list[dict]:
        batches = super().before_step(run)
        if not is_on_policy_step(self.on_policy_probability(run.step), run.seed, run.step):
            return batches
        run.on_policy = True
        sampler = run.frozen["teacher"] if self.sample_model == "teacher" else run.unwrapped
        return [self.sampled(sampler, run, batch) for batch in batches]


class AdaptiveSampling(SamplingFields, ABC):
    """Mixin for a stateful schedule of sampled steps (DistiLLM's `AdaptiveOffPolicy`, built by
    `off_policy_schedule`): it watches the student's validation loss, measured once per epoch of
    the training data, and chooses each step's data: the dataset, fresh student samples (which
    enter its replay buffer), or replayed ones. Its state travels in the checkpoint."""

    @abstractmethod
    def off_policy_schedule(self) -> AdaptiveOffPolicy:
        """A fresh schedule, from the method's fields."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._schedule = self.off_policy_schedule()  # every run starts one: the loop restores state before step 0
        if "schedule" in state:
            self._schedule.load_state_dict(state["schedule"])

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "schedule": self._schedule.state_dict()}

    def before_step(self, run: TrainRun) -> list[dict]:
        batches, schedule = super().before_step(run), self._schedule
        if run.step % max(1, len(run.examples) // run.budget.batch_size) == 0:  # each epoch's first step
            schedule.observe(run.batching.validation_nll(run.student))
        choice = schedule.choose(run.seed, run.step, run.budget.steps)
        run.on_policy = choice != "data"
        if choice == "fresh":
            batches = [self.sampled(run.unwrapped, run, batch) for batch in batches]
            for batch in batches:
                schedule.remember(batch)
        elif choice == "replay":
            batches = [self._replayed(run, index, batch) for index, batch in enumerate(batches)]
        return batches

    def _replayed(self, run: TrainRun, index: int, batch: dict) -> dict:
        """As many buffered samples as `batch` holds, in its place (micro-batch `index` of the step)."""
        replayed = self._schedule.replay(run.seed, run.step + index, len(batch["input_ids"]))
        return {k: v.to(batch["input_ids"].device) for k, v in collate(replayed, run.batching.pad_id).items()}


class MakesExamples(Staged, ABC):
    """Mixin for methods that train on examples they make from their data (problems) with the current
    models at the start of every stage (`make_examples`: MCTS-DPO's search, teacher hacking's teacher
    samples), in place of the data. The examples travel in the checkpoint, so a resumed run trains
    on the ones it made."""

    generates_examples: ClassVar[bool] = True

    @abstractmethod
    def make_examples(self, student, tokenizer, problems: list[dict], seed: int, stage: int,
                      frozen: dict[str, torch.nn.Module]) -> list[dict]:
        """Stage `stage`'s training examples, made from `problems` with the current `student`."""

    def on_stage(self, run: TrainRun, stage: int) -> None:
        if self._examples_stage == stage:  # restored from the checkpoint of a run resumed mid-stage
            return
        self._examples = self.make_examples(run.unwrapped, run.batching.tokenizer, run.examples, run.seed, stage,
                                            run.frozen)
        self._examples_stage = stage
        if not self._examples:
            raise CellFailure(run.step + 1, f"stage {stage} produced no training examples")

    def before_step(self, run: TrainRun) -> list[dict]:
        stage = self.enter_stage(run)
        return mark_stage(run.batches(self._examples), stage)  # the made examples replace the data

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._examples, self._examples_stage = state.get("examples"), state.get("examples_stage")

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "examples": self._examples, "examples_stage": self._examples_stage}


class MovesReference(ABC):
    """Mixin for methods that move their reference while training (Curry-DPO's iterations, ADPO's
    anchor): while `updates_reference` holds, `update_reference` runs after every optimizer step,
    and the reference is checkpointed with the student."""

    updates_reference: ClassVar[bool] = True

    @abstractmethod
    def update_reference(self, reference: torch.nn.Module, student: torch.nn.Module, steps_done: int,
                         total_steps: int) -> None:
        """Move `reference` (in place) once `steps_done` of `total_steps` optimizer steps are done."""

    def moving_models(self, run: TrainRun) -> dict[str, torch.nn.Module]:
        moving = super().moving_models(run)
        return {**moving, "reference": run.frozen["reference"]} if self.updates_reference else moving

    def after_step(self, run: TrainRun) -> dict[str, float]:
        if self.updates_reference:
            self.update_reference(run.frozen["reference"], run.unwrapped, run.step + 1, run.budget.steps)
        return super().after_step(run)
