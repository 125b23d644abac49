"""Flash-DMD (Chen, Huang, Liu, Zhu, Qu, Chen, Cheng & Sun, "Flash-DMD: ...", arXiv:2511.20549; CVPR 2026):
DMD2's multi-step generator with its losses split by noise level, then a joint reinforcement-learning stage.

Stage 1, distillation. A K-step generator (the consistency sampler's timesteps t_0 > … > t_{K−1}); its first
`high_noise_steps` steps get the distribution-matching loss alone, its last ones an adversarial loss alone:

    high noise: i ~ U{0..h−1}, x̂₀ = G(x_{t_i}) from the state its earlier steps reach (backward simulation);
                L_DM as DMD2's (`critic.distribution_matching_loss`, the real score at `real_guidance`)
    low noise:  x₀ = sg(B(z)), the generator's whole rollout; x̂ = α_t̂ x₀ + σ_t̂ ε at a low-noise t̂ = t_j,
                j ~ U{h..K−1}; L_adv = softplus(−D(G(x̂))), D a head on the frozen teacher's features of the
                clean sample (the paper: a frozen SAM encoder with trained heads on decoded images), trained
                with softplus(D(fake)) + softplus(−D(real)) on real points of the prompt pool
    critic:     denoising score matching on the generator's detached x̂₀, `generator_every` critic updates
                per generator update (1 or 2 in the paper, against DMD2's 5)

Stage 2, joint RL, from step `rl_start`: of every `rl_ratio` + 1 steps, `rl_ratio` are preference steps and one
is a distillation step (the paper's best ratio, 5:1; the distillation keeps the RL from reward hacking). A
preference step takes a high-noise state z_t (t = t_i, i ~ U{0..h−1}), draws `candidates` next states from the
generator's stochastic step z′ = α_{t′} x̂₀_θ(z_t) + σ_{t′} ε (t′ = t_{i+1}, the consistency sampler's), scores
them with a reward model of noisy states, and takes the best and worst as winner w and loser l:

    H = [log p_θ(w | z_t) − log p_ref(w | z_t)] − [log p_θ(l | z_t) − log p_ref(l | z_t)]
    L_RL = −log σ(β H),   log p(z′ | z_t) = −‖z′ − α_{t′} x̂₀(z_t)‖² / (2σ²_{t′}) + const

The paper's latent reward model scores noisy latents at any timestep; the pocket reward here is exact: the log
density of the prompt's part of the world (the whole world for the empty prompt) diffused to t′,
log Σ_m π_m N(z′; α_{t′} μ_m, (α²_{t′} s² + σ²_{t′}) I) in the model's units. The reference p_ref is the
generator as it was at `rl_start` (frozen).

No code was released ("coming soon"); the structure above is the paper's as summarised in public notes. Not
verified against the paper's text: the high/low threshold (here half the steps), β, the number of candidates,
the reference policy, how a step is made stochastic, and the GAN weights (here 1, tuned against 0.1: the
adversarial loss is the only one at low noise) — all [unverified]. Not
here: the critic's EMA coupling to the generator (reported as ψ ← λψ + (1 − λ)θ; unverified, and λ unknown).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from annotated_types import Ge, Gt, Le
from torch import nn

from distillbench.kinds.diffusion.points import Mixture, generator_timesteps
from distillbench.methods.base import register_method
from distillbench.methods.diffusion.critic import (CriticDistillation, GeneratorAndCritic, critic_denoising_loss,
                                                   distribution_matching_at, gan_generator_loss, x0_from_output)


def diffused_log_density(world: Mixture, points: torch.Tensor, alpha: float, sigma: float,
                         labels: torch.Tensor) -> torch.Tensor:
    """log p_t(z | prompt) of points in the model's units (the world divided by its scale), each under its
    prompt's modes (all of them for the empty prompt, label ≥ the class count) diffused to α, σ."""
    result = torch.empty(len(points), dtype=torch.float64)
    for label in labels.unique().tolist():
        part = world.given(label) if label < world.class_count else world
        means = torch.as_tensor(np.asarray(part.means), dtype=torch.float64) / world.scale
        variance = alpha**2 * (part.std / world.scale) ** 2 + sigma**2
        rows = labels == label
        squared = ((points[rows].double()[:, None] - alpha * means) ** 2).sum(-1)
        components = torch.log(torch.as_tensor(part.weights, dtype=torch.float64)) - squared / (2 * variance)
        result[rows] = torch.logsumexp(components, 1) - points.shape[1] / 2 * math.log(2 * math.pi * variance)
    return result


def step_preference_loss(policy_mean: torch.Tensor, reference_mean: torch.Tensor, winners: torch.Tensor,
                         losers: torch.Tensor, sigma: float, beta: float) -> torch.Tensor:
    """−log σ(β H) averaged over the batch, H the winner's log-ratio minus the loser's, each log p a Gaussian of
    standard deviation `sigma` about its model's mean (the constants cancel)."""
    def log_ratio(state: torch.Tensor) -> torch.Tensor:
        return (((state - reference_mean) ** 2).sum(-1) - ((state - policy_mean) ** 2).sum(-1)) / (2 * sigma**2)

    return -F.logsigmoid(beta * (log_ratio(winners) - log_ratio(losers))).mean()


class FlashModule(GeneratorAndCritic):
    """The generator, its critic, the GAN head and the RL stage's reference (the generator at `rl_start`)."""

    def __init__(self, generator: nn.Module):
        super().__init__(generator, discriminator=True)
        self.reference = copy.deepcopy(generator).requires_grad_(False)


@register_method("flash-dmd", family="diffusion", paper="Chen et al. 2025, arXiv:2511.20549",
                 summary="DMD2's few-step generator with distribution matching at high noise and a GAN at low noise, "
                         "then joint step-level preference RL with a pocket reward")
@dataclass
class FlashDMD(CriticDistillation):
    generator_steps: Annotated[int, Gt(1)] = 4
    high_noise_steps: Annotated[int, Gt(0)] = 2
    backward_simulation: ClassVar[bool] = True  # its states and its low-noise samples come from its own rollouts
    real_guidance: Annotated[float, Ge(1)] = 1.0
    generator_every: Annotated[int, Gt(0)] = 1
    min_timestep: Annotated[float, Ge(0), Le(1)] = 0.02
    max_timestep: Annotated[float, Ge(0), Le(1)] = 0.98
    # the adversarial loss is the low-noise steps' only loss, not an auxiliary term as in DMD2 (3e-3 there left
    # those steps untrained on the pocket world: dev 0.31, the teacher's own 4 steps 0.28)
    gan_generator_weight: Annotated[float, Gt(0)] = 1.0
    gan_discriminator_weight: Annotated[float, Gt(0)] = 1.0
    rl_start: Annotated[int, Ge(0)] = 300  # the paper's 1k distillation steps before 2k joint ones: a third
    rl_ratio: Annotated[int, Ge(0)] = 5  # preference steps per distillation step in the joint stage (0: no RL)
    candidates: Annotated[int, Gt(1)] = 4
    beta: Annotated[float, Gt(0)] = 1.0

    generator_term = "distribution_matching"
    # the weight of the low-noise steps' adversarial loss, whose value the paper's summaries do not give
    search_space = {"gan_generator_weight": (0.1, 1.0)}

    def check(self) -> list[str]:
        problems = super().check()
        if self.high_noise_steps >= self.generator_steps:
            problems.append("high_noise_steps: leave at least one low-noise step for the adversarial loss")
        return problems

    def prepare(self, run) -> None:
        self.world = run.batching.world  # the pocket reward's density

    def training_module(self, student: nn.Module) -> nn.Module:
        return FlashModule(student)

    def before_step(self, run) -> list[dict[str, Any]]:
        if run.step == self.rl_start and self.rl_ratio:  # a resumed run finds the reference in its checkpoint
            run.unwrapped.reference.load_state_dict(run.unwrapped.generator.state_dict())
        return super().before_step(run)

    def preference_step(self, step: int) -> bool:
        return bool(self.rl_ratio) and step >= self.rl_start and (step - self.rl_start) % (self.rl_ratio + 1) < self.rl_ratio

    def generator_step(self, step: int) -> bool:
        return not self.preference_step(step) and super().generator_step(step)

    def teacher_forwards(self, batch: dict) -> int:
        """On distillation steps, DMD2's count (the real score, the GAN features of the real and both fakes)."""
        return 0 if self.preference_step(batch["step"]) else super().teacher_forwards(batch)

    def loss(self, module: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        scheduler, labels, draws = batch["scheduler"], batch["class_labels"], batch["generator"]
        timesteps = generator_timesteps(dict(scheduler.config), self.generator_steps).to(labels.device)
        index = int(torch.randint(self.high_noise_steps, (), generator=draws))
        state = self.generator_state(module.generator, batch, timesteps, index)
        at = timesteps[index].expand(len(labels))
        if self.preference_step(batch["step"]):
            return self.preference_terms(module, batch, state, timesteps, index)
        update = self.generator_step(batch["step"])
        with torch.set_grad_enabled(update and torch.is_grad_enabled()):
            sample = x0_from_output(scheduler, state, module.generator(state, at, labels), at)
            low_noise = self.low_noise_sample(module.generator, batch, timesteps)
        terms = {"critic": critic_denoising_loss(module.critic, scheduler, sample.detach(), labels, draws),
                 "discriminator": self.gan_discriminator_weight * self.clean_discriminator_loss(
                     module.discriminator, batch["teacher"], low_noise.detach(), batch["clean"], labels)}
        if update:
            timesteps, noise = self.renoising(scheduler, sample, draws)
            terms[self.generator_term] = distribution_matching_at(module.critic, batch["teacher"], scheduler, sample,
                                                                  timesteps, noise, labels, self.real_guidance)
            logits = self.discriminator_logits(module.discriminator, batch["teacher"], low_noise,
                                               torch.zeros_like(labels), labels)
            terms["gan"] = self.gan_generator_weight * gan_generator_loss(logits)
        return terms

    def low_noise_sample(self, generator: nn.Module, batch: dict, timesteps: torch.Tensor) -> torch.Tensor:
        """The generator's x̂₀ at a low-noise step, from its own rollout's clean sample re-noised there."""
        scheduler, labels, draws = batch["scheduler"], batch["class_labels"], batch["generator"]
        with torch.no_grad():
            last = self.generator_state(generator, batch, timesteps, self.generator_steps - 1)
            at = timesteps[-1].expand(len(labels))
            clean = x0_from_output(scheduler, last, generator(last, at, labels), at)
        index = self.high_noise_steps + int(torch.randint(self.generator_steps - self.high_noise_steps, (),
                                                          generator=draws))
        at = timesteps[index].expand(len(labels))
        noisy = scheduler.add_noise(clean, torch.randn(clean.shape, generator=draws).to(clean.device), at)
        return x0_from_output(scheduler, noisy, generator(noisy, at, labels), at)

    @staticmethod
    def clean_discriminator_loss(head, teacher, fake, real, labels) -> torch.Tensor:
        """The head on clean points (the teacher's features at t = 0): real points of the pool against the
        generator's."""
        zero = torch.zeros_like(labels)
        with torch.no_grad():
            real_features, fake_features = teacher.features(real, zero, labels), teacher.features(fake, zero, labels)
        return F.softplus(head(fake_features)).mean() + F.softplus(-head(real_features)).mean()

    def preference_terms(self, module, batch: dict, state: torch.Tensor, timesteps: torch.Tensor,
                         index: int) -> dict[str, torch.Tensor]:
        """The step-level preference loss on `candidates` next states of the high-noise `state`, and the
        critic's denoising loss (it keeps tracking the generator)."""
        scheduler, labels, draws = batch["scheduler"], batch["class_labels"], batch["generator"]
        at, after = timesteps[index].expand(len(labels)), int(timesteps[index + 1])
        alpha, sigma = (float(scheduler.alphas_cumprod[after].sqrt()), float((1 - scheduler.alphas_cumprod[after]).sqrt()))
        sample = x0_from_output(scheduler, state, module.generator(state, at, labels), at)
        with torch.no_grad():
            reference = x0_from_output(scheduler, state, module.reference(state, at, labels), at)
            noise = torch.randn((self.candidates, *sample.shape), generator=draws).to(sample.device)
            candidates = alpha * sample.detach() + sigma * noise  # [candidates, n, dims]
            rewards = torch.stack([diffused_log_density(self.world, candidate, alpha, sigma, labels)
                                   for candidate in candidates])
            rows = torch.arange(len(labels))
            winners, losers = candidates[rewards.argmax(0), rows], candidates[rewards.argmin(0), rows]
        return {"preference": step_preference_loss(alpha * sample, alpha * reference, winners, losers, sigma, self.beta),
                "critic": critic_denoising_loss(module.critic, scheduler, sample.detach(), labels, draws)}
