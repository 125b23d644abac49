"""What the score-distillation methods share (DMD2, SiD): a one-step generator (the student, its x̂₀ from pure
noise at the last training timestep) trained against the frozen teacher and a fake-score critic, a trainable
copy of the student fitted to the generator's own samples by denoising score matching every step.

`CriticDistillation.loss` returns the critic's term every step and the generator's term (the subclass's
`generator_loss`) every `generator_every` steps, so between them the generator gets no gradient and the
optimiser leaves its parameters and moments alone (the two-time-scale update rule of DMD2).
"""

from __future__ import annotations

import copy
from abc import abstractmethod
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from distillbench.methods.base import Method


def x0_from_velocity(scheduler, sample: torch.Tensor, velocity: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """x̂₀ = α_t x_t − σ_t v for a v-prediction model (α_t = √ᾱ_t, σ_t = √(1 − ᾱ_t))."""
    alphas = scheduler.alphas_cumprod.to(sample.device, sample.dtype)[timesteps]
    shape = (-1,) + (1,) * (sample.dim() - 1)
    return alphas.sqrt().view(shape) * sample - (1 - alphas).sqrt().view(shape) * velocity


def critic_denoising_loss(critic: nn.Module, scheduler, sample: torch.Tensor, labels: torch.Tensor,
                          generator: torch.Generator) -> torch.Tensor:
    """The critic's denoising score matching on the generator's (detached) samples, in its own target (v)."""
    timesteps = torch.randint(scheduler.config.num_train_timesteps, (len(sample),), generator=generator)
    noise = torch.randn(sample.shape, generator=generator)
    timesteps, noise = timesteps.to(sample.device), noise.to(sample.device)
    prediction = critic(scheduler.add_noise(sample, noise, timesteps), timesteps, labels)
    return F.mse_loss(prediction, scheduler.get_velocity(sample, noise, timesteps))


class GeneratorAndCritic(nn.Module):
    """What a score-distillation method trains: the generator (the student, saved at the end) and its critic."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator
        self.critic = copy.deepcopy(generator)


class CriticDistillation(Method):
    """A one-step generator against the teacher and a fake-score critic; subclasses give `generator_loss`."""

    data_kind: ClassVar[str] = "diffusion"
    normalize_by: ClassVar[str] = "examples"
    generator_every: int = 1  # a dataclass field in the subclasses that tune it
    real_guidance: float = 1.0

    def training_module(self, student: nn.Module) -> nn.Module:
        return GeneratorAndCritic(student)

    def trained_model(self, module: nn.Module) -> nn.Module:
        return module.generator

    min_timestep: float = 0.02  # dataclass fields in the subclasses: the re-noising range of the generator's loss
    max_timestep: float = 0.98

    def check(self) -> list[str]:
        return [] if self.min_timestep < self.max_timestep else ["min_timestep: below max_timestep"]

    def renoising(self, scheduler, sample: torch.Tensor, generator: torch.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """(timesteps, noise) re-noising the generator's samples for its loss: t ~ U[min_timestep·T, max_timestep·T)."""
        total = scheduler.config.num_train_timesteps
        timesteps = torch.randint(int(self.min_timestep * total), int(self.max_timestep * total), (len(sample),),
                                  generator=generator)
        noise = torch.randn(sample.shape, generator=generator)
        return timesteps.to(sample.device), noise.to(sample.device)

    def generator_step(self, step: int) -> bool:
        return step % self.generator_every == 0

    def teacher_forwards(self, batch: dict) -> int:
        """Teacher evaluations a batch costs: one per sample (two with guidance) on generator steps."""
        if not self.generator_step(batch["step"]):
            return 0
        return len(batch["class_labels"]) * (2 if self.real_guidance != 1.0 else 1)

    def loss(self, student: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        scheduler, labels, generator = batch["scheduler"], batch["class_labels"], batch["generator"]
        update_generator = self.generator_step(batch["step"])
        with torch.set_grad_enabled(update_generator and torch.is_grad_enabled()):
            start = torch.full((len(labels),), scheduler.config.num_train_timesteps - 1, device=labels.device)
            sample = x0_from_velocity(scheduler, batch["noise"], student.generator(batch["noise"], start, labels), start)
        terms = {"critic": critic_denoising_loss(student.critic, scheduler, sample.detach(), labels, generator)}
        if update_generator:
            terms[self.generator_term] = self.generator_loss(student.critic, batch["teacher"], scheduler, sample,
                                                             labels, generator)
        return terms

    generator_term: ClassVar[str] = "generator"  # the generator's loss term, as logged

    @abstractmethod
    def generator_loss(self, critic, teacher, scheduler, sample, labels, generator) -> torch.Tensor:
        """The generator's loss on its one-step `sample` (with gradient), the critic and the frozen teacher."""
