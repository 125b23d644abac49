"""SiD — Score identity Distillation (Zhou, Zheng, Wang, Yin & Huang, "Score identity Distillation:
Exponentially Fast Distillation of Pretrained Diffusion Models for One-Step Generation", arXiv:2404.04057;
ICML 2024).

The same one-step generator and fake-score critic as DMD2 (`critic.CriticDistillation`: the critic's
denoising score matching on the generator's detached samples every step), but the generator's loss comes from
score identities and is back-propagated through both score networks' evaluations at x_t (not detached):

    t ~ U[t_min, t_max],  x_t = α_t x + σ_t ε,  y_r = x̂₀_teacher(x_t),  y_f = x̂₀_critic(x_t)
    w   = sg(mean_dims |x − y_r|)  (clamped at 1e-5)
    L_G = mean_batch Σ_dims (y_r − y_f) · ((y_r − x) − α (y_r − y_f)) / w

α = 1 reduces it to Σ (y_r − y_f)(y_f − x) / w; the paper's ImageNet and CIFAR runs use α = 1.2 (the SiD-LSG
scripts 1). SiD-LSG (Zhou et al. 2024, arXiv:2406.01561, long and short guidance) evaluates both scores with
classifier-free guidance: y_r at `real_guidance` (κ₄) and y_f at `fake_guidance` (κ₂), the critic's own
unconditional output as the guided-away branch (κ = 1.5 for both in its SD1.5 scripts; 1, the defaults: none). The critic's parameters are held fixed while L_G is computed, so L_G trains the generator only
(the authors update the two networks with separate optimisers). Steps: t from 20 to 980 of 1,000, as the
authors' loop (mingyuanzhou/SiD ``sid_training_loop.py``, as summarised in the reference notes). The models
here predict v, so x̂₀ = α_t x_t − σ_t v; the authors' EDM models predict x₀ at σ. The generator here starts
from pure noise at the last training timestep, where SiD feeds σ_init·z at a fixed σ_init (2.5).

Few-step SiD (Zhou, Gu & Wang, "Few-Step Diffusion via Score identity Distillation", arXiv:2505.12674; read in
apple-aiml-research/ml-sid-dit at 9596ed9, ``training/sid_dit_training_loop.py``): one generator takes K steps
(`generator_steps`), each output re-noised with fresh noise to the next step's time; every iteration draws
k ~ U{1..K}, rolls the first k − 1 steps out without gradient and applies L_G to step k's output, so the mixture
of the k-step outputs is matched to the data. Here that is `backward_simulation` on a `generator_steps`-step
generator (`critic.CriticDistillation.generator_state`; the times are those of the consistency sampler that
scores it). The paper's guidance strategies, in the code's convention (guidance g: u + g (c − u); 1 the
conditional output alone, 0 the unconditional alone):

- Zero-CFG: the teacher unguided (`real_guidance` 1) and the fake score without the prompt, trained and
  evaluated on the empty prompt (`critic_prompted: false`, `fake_guidance` 0): the generator's pull,
  y_r(x | c) − y_f(x | ∅), then carries the prompt's guidance itself.
- Anti-CFG: negative guidance in the fake score (`fake_guidance` < 0); its value, and whether the fake score's
  training keeps the prompt, are not in the code read ([unverified]; here it keeps it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import torch
from annotated_types import Ge, Gt, Le

from distillbench.core.recipe import KEY_MARKER, WHEN_SET
from distillbench.kinds.diffusion.points import guided
from distillbench.methods.base import register_method
from distillbench.methods.diffusion.critic import CriticDistillation, frozen_parameters, x0_from_output


def sid_generator_loss(sample: torch.Tensor, real_x0: torch.Tensor, fake_x0: torch.Tensor, alpha: float
                       ) -> torch.Tensor:
    """SiD's generator loss, per sample summed over its dimensions, averaged over the batch."""
    dims = tuple(range(1, sample.dim()))
    weight = (sample - real_x0).abs().mean(dim=dims, keepdim=True).detach().clamp_min(1e-5)
    difference = real_x0 - fake_x0
    return (difference * ((real_x0 - sample) - alpha * difference) / weight).sum(dim=dims).mean()


@register_method("sid", family="diffusion", paper="Zhou et al. 2024, arXiv:2404.04057",
                 summary="score identity distillation: a one-step generator from score identities, back-propagated "
                         "through the teacher and a fake-score critic")
@dataclass
class SiD(CriticDistillation):
    alpha: Annotated[float, Ge(0)] = 1.2
    real_guidance: Annotated[float, Ge(1)] = 1.0
    # SiD-LSG's guidance of the fake score (κ₂); 0 or below for Zero-CFG and Anti-CFG. Added after the first
    # board, as the options below: in the cell key only when set
    fake_guidance: float = field(default=1.0, metadata={KEY_MARKER: WHEN_SET})
    critic_prompted: bool = field(default=True, metadata={KEY_MARKER: WHEN_SET})  # False: Zero-CFG's fake score
    generator_steps: Annotated[int, Gt(0)] = field(default=1, metadata={KEY_MARKER: WHEN_SET})
    backward_simulation: bool = field(default=False, metadata={KEY_MARKER: WHEN_SET})
    generator_every: Annotated[int, Gt(0)] = 1
    min_timestep: Annotated[float, Ge(0), Le(1)] = 0.02
    max_timestep: Annotated[float, Ge(0), Le(1)] = 0.98

    generator_term = "score_identity"
    search_space = {"alpha": (1.0, 1.2)}  # the paper's 1.2 and the SiD-LSG scripts' 1

    def check(self) -> list[str]:
        problems = super().check()
        if not self.critic_prompted and self.fake_guidance != 0:
            problems.append("critic_prompted: false trains the fake score on the empty prompt alone, so its prompted "
                            "branch is untrained: set fake_guidance to 0 (Zero-CFG)")
        return problems

    def critic_labels(self, labels: torch.Tensor) -> torch.Tensor | None:
        return labels if self.critic_prompted else None

    def generator_loss(self, critic, teacher, scheduler, sample, labels, generator) -> torch.Tensor:
        timesteps, noise = self.renoising(scheduler, sample, generator)
        noisy = scheduler.add_noise(sample, noise, timesteps)  # keeps the generator's graph
        real = x0_from_output(scheduler, noisy, guided(teacher, noisy, timesteps, labels, self.real_guidance),
                                timesteps)
        with frozen_parameters(critic):
            fake = x0_from_output(scheduler, noisy, guided(critic, noisy, timesteps, labels, self.fake_guidance),
                                    timesteps)
        return sid_generator_loss(sample, real, fake, self.alpha)
