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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import torch
from annotated_types import Ge, Gt, Le

from distillbench.core.recipe import KEY_MARKER, WHEN_SET
from distillbench.kinds.diffusion.points import guided
from distillbench.methods.base import register_method
from distillbench.methods.diffusion.critic import CriticDistillation, frozen_parameters, x0_from_velocity


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
    # SiD-LSG's guidance of the fake score (κ₂); added after the first board: in the cell key only when set
    fake_guidance: Annotated[float, Ge(1)] = field(default=1.0, metadata={KEY_MARKER: WHEN_SET})
    generator_every: Annotated[int, Gt(0)] = 1
    min_timestep: Annotated[float, Ge(0), Le(1)] = 0.02
    max_timestep: Annotated[float, Ge(0), Le(1)] = 0.98

    generator_term = "score_identity"
    search_space = {"alpha": (1.0, 1.2)}  # the paper's 1.2 and the SiD-LSG scripts' 1

    def generator_loss(self, critic, teacher, scheduler, sample, labels, generator) -> torch.Tensor:
        timesteps, noise = self.renoising(scheduler, sample, generator)
        noisy = scheduler.add_noise(sample, noise, timesteps)  # keeps the generator's graph
        real = x0_from_velocity(scheduler, noisy, guided(teacher, noisy, timesteps, labels, self.real_guidance),
                                timesteps)
        with frozen_parameters(critic):
            fake = x0_from_velocity(scheduler, noisy, guided(critic, noisy, timesteps, labels, self.fake_guidance),
                                    timesteps)
        return sid_generator_loss(sample, real, fake, self.alpha)
