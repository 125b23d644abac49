"""Phased DMD (Fan, Qiu, Wu, Wang, Lin, Ren, Lin, Gong & Yang, "Phased DMD: Few-step Distribution Matching
Distillation via Score Matching within Subintervals", arXiv:2510.27684; CVPR 2026).

A K-step generator's timesteps t_0 > … > t_{K−1} (those of the consistency sampler that scores it) are split
into P phases of K/P steps; phase p has its own expert G_p (a mixture of experts by noise level, saved as a
`points.PhasedDenoiser`) and its own fake-score critic F_p, each starting from the student. Phase p ends at
s_p, the first timestep of the next phase (s = 0 for the last: its output is the clean sample). The
generator's step at t_i (i drawn per step, p its phase) denoises the state its own earlier steps reach (backward
simulation, no gradient) to x̂₀, whose phase output is x_s = α_s x̂₀ + σ_s ε′. With α_{t|s} = α_t/α_s and
σ²_{t|s} = σ_t² − α²_{t|s} σ_s²:

    critic (score matching within the subinterval, on x_s alone; t ~ U(s + margin, T), x_t = α_{t|s} x_s + σ_{t|s} ε):
        x₀* = x_s/α_s − ε · α_t σ_s² / (α_s² σ_{t|s})         (unbiased: E[x₀* | x_t] = E[x₀ | x_t])
        L_F = ‖v_F(x_t, t) − v(x_t; x₀*)‖² / N,   v(x_t; x₀) = α_t (x_t − α_t x₀)/σ_t − σ_t x₀
    generator (DMD within the reverse-nested interval t ~ U(s + margin, t_max·T), x_t ~ p(x_t | x_s)):
        g = (x̂₀_F(x_t) − x̂₀_teacher(x_t)) / mean_dims |x̂₀ − x̂₀_teacher(x_t)|,  L_G = ½ ‖x̂₀ − sg(x̂₀ − g)‖² / N

Noising x_s to t is noising x̂₀ to t in law (the Gaussian kernels compose), so x_t is drawn from x̂₀ directly.
For s = 0 the critic's loss is the usual denoising loss. The naive subinterval target, x_s/α_s (or ε − x_s in
the flow form), is biased: E[x₀* | x_t] needs the ε correction (the paper's 1-D example).

Read in ModelTC/LightX2V (``lightx2v_train/trainers/phased_dmd``, 7b3385a; its SenseTime authors' team, but
whether it is the paper's code is unconfirmed): the velocity target within a subinterval
(``phased_velocity_target``), DMD2's normaliser applied to the generator's x̂₀, t at least 20 timesteps above
the boundary, and both phases trained together, alternating (the paper trains them one after the other; here a
step draws its phase with its step index, so jointly). Defaults: the paper's 4 steps in 2 phases, 5 critic
updates per generator update, no GAN or regression term. Not here: the paper's LoRA generator and its clamped
loss weight min(1, 10 σ²_{t|s}) ([unverified]; the code read has none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F
from annotated_types import Ge, Gt, Le
from torch import nn

from distillbench.kinds.diffusion.points import PhasedDenoiser, generator_timesteps
from distillbench.methods.base import register_method
from distillbench.methods.diffusion.critic import (CriticDistillation, GeneratorsAndCritics, distribution_matching_at,
                                                   per_sample, x0_from_output)


def _alpha_sigma(scheduler, timesteps: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(α_t, σ_t) per timestep, shaped to broadcast over `like`; timestep −1 stands for t = 0 (α 1, σ 0)."""
    cumulative = scheduler.alphas_cumprod[timesteps.clamp_min(0)].float()
    cumulative = torch.where(timesteps < 0, torch.ones_like(cumulative), cumulative)
    return per_sample(cumulative.sqrt(), like), per_sample((1 - cumulative).sqrt(), like)


def subinterval_target(x_s: torch.Tensor, noise: torch.Tensor, start: torch.Tensor, timesteps: torch.Tensor,
                       scheduler) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, x₀*): x_s noised from its time `start` (−1: clean) to `timesteps`, and the unbiased x₀ target."""
    alpha_s, sigma_s = _alpha_sigma(scheduler, start, x_s)
    alpha_t, sigma_t = _alpha_sigma(scheduler, timesteps, x_s)
    alpha_ts = alpha_t / alpha_s
    sigma_ts = (sigma_t**2 - alpha_ts**2 * sigma_s**2).clamp_min(1e-12).sqrt()
    noisy = alpha_ts * x_s + sigma_ts * noise
    return noisy, x_s / alpha_s - noise * alpha_t * sigma_s**2 / (alpha_s**2 * sigma_ts)


def subinterval_denoising_loss(critic: nn.Module, scheduler, x_s: torch.Tensor, start: torch.Tensor,
                               timesteps: torch.Tensor, noise: torch.Tensor, labels) -> torch.Tensor:
    """The critic's score matching within the subinterval (start, T]: its v at x_t against the v of x₀*."""
    noisy, target = subinterval_target(x_s, noise, start, timesteps, scheduler)
    alpha_t, sigma_t = _alpha_sigma(scheduler, timesteps, x_s)
    velocity = alpha_t * (noisy - alpha_t * target) / sigma_t - sigma_t * target
    return F.mse_loss(critic(noisy, timesteps, labels), velocity)


@register_method("phased-dmd", family="diffusion", paper="Fan et al. 2025, arXiv:2510.27684",
                 summary="DMD per phase of a few-step generator: one expert and one critic per phase, the critic's "
                         "score matching within its subinterval")
@dataclass
class PhasedDMD(CriticDistillation):
    phases: Annotated[int, Gt(1)] = 2
    generator_steps: Annotated[int, Gt(1)] = 4
    backward_simulation: bool = True
    real_guidance: Annotated[float, Ge(1)] = 1.0
    generator_every: Annotated[int, Gt(0)] = 5
    min_timestep: Annotated[float, Ge(0), Le(1)] = 0.02
    max_timestep: Annotated[float, Ge(0), Le(1)] = 0.98
    margin: Annotated[int, Ge(0)] = 20  # timesteps above a phase's boundary where its scores start

    generator_term = "distribution_matching"
    search_space = {"generator_every": (1, 5, 10)}  # DMD2's two-time-scale ratio (the paper's 5 among them)

    def check(self) -> list[str]:
        problems = super().check()
        if self.generator_steps % self.phases:
            problems.append(f"generator_steps: {self.generator_steps} steps do not split into {self.phases} phases")
        return problems

    def prepare(self, run) -> None:
        config = dict(run.batching.scheduler.config)
        self.phase_ends = self.boundaries(generator_timesteps(config, self.generator_steps))

    def training_module(self, student: nn.Module) -> nn.Module:
        return GeneratorsAndCritics(student, self.phases)

    def trained_model(self, module: nn.Module) -> PhasedDenoiser:
        """The experts as one model, routed by timestep (`prepare` found the boundaries); it shares the training
        module's parameters."""
        return PhasedDenoiser([part.generator for part in module.parts], self.phase_ends)

    def boundaries(self, timesteps: torch.Tensor) -> list[int]:
        """Where each phase but the last ends: the first of the generator's `timesteps` in the next."""
        per_phase = self.generator_steps // self.phases
        return [int(timesteps[(phase + 1) * per_phase]) for phase in range(self.phases - 1)]

    def loss(self, module: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        scheduler, labels, draws = batch["scheduler"], batch["class_labels"], batch["generator"]
        timesteps = generator_timesteps(dict(scheduler.config), self.generator_steps).to(labels.device)
        boundaries = self.boundaries(timesteps)
        experts = PhasedDenoiser([part.generator for part in module.parts], boundaries)
        index = int(torch.randint(self.generator_steps, (), generator=draws))
        phase = index * self.phases // self.generator_steps
        part, start = module.parts[phase], (boundaries[phase] if phase < self.phases - 1 else -1)  # −1: clean
        update = self.generator_step(batch["step"])
        with torch.set_grad_enabled(update and torch.is_grad_enabled()):
            state = self.generator_state(experts, batch, timesteps, index)
            at = timesteps[index].expand(len(labels))
            sample = x0_from_output(scheduler, state, experts(state, at, labels), at)
        terms = {"critic": self.critic_loss(part.critic, scheduler, sample.detach(), start, labels, draws)}
        if update:
            terms[self.generator_term] = self.matching_loss(part.critic, batch["teacher"], scheduler, sample, start,
                                                            labels, draws)
        return terms

    def phase_times(self, start: int, count: int, draws: torch.Generator, low: int, high: int) -> torch.Tensor:
        """t ~ U[low, high), above the phase's boundary by `margin` (the reverse-nested interval (s, T])."""
        bottom = low if start < 0 else min(max(start + self.margin, low), high - 1)
        return torch.randint(bottom, high, (count,), generator=draws)

    def critic_loss(self, critic, scheduler, sample, start: int, labels, draws) -> torch.Tensor:
        """The phase's critic on its output x_s (the sample itself for the last phase)."""
        count = len(sample)
        starts = torch.full((count,), start)
        alpha_s, sigma_s = _alpha_sigma(scheduler, starts, sample)
        x_s = alpha_s * sample + sigma_s * torch.randn(sample.shape, generator=draws)
        timesteps = self.phase_times(start, count, draws, 0, scheduler.config.num_train_timesteps)
        noise = torch.randn(sample.shape, generator=draws)
        return subinterval_denoising_loss(critic, scheduler, x_s, starts, timesteps, noise, labels)

    def matching_loss(self, critic, teacher, scheduler, sample, start: int, labels, draws) -> torch.Tensor:
        """DMD's loss on the generator's x̂₀, its scores taken within the phase's interval."""
        total = scheduler.config.num_train_timesteps
        timesteps = self.phase_times(start, len(sample), draws, int(self.min_timestep * total),
                                     int(self.max_timestep * total))
        noise = torch.randn(sample.shape, generator=draws)
        return distribution_matching_at(critic, teacher, scheduler, sample, timesteps, noise, labels, self.real_guidance)
