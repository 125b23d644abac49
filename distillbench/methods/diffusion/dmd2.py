"""DMD2 — Improved Distribution Matching Distillation (Yin, Gharbi, Park, Zhang, Shechtman, Durand &
Freeman, "Improved Distribution Matching Distillation for Fast Image Synthesis", arXiv:2405.14867;
NeurIPS 2024), regression-free, with the two-time-scale update rule.

A one-step generator x = G(z, c) (the student at the last training timestep, its x₀ prediction from pure
noise) is moved along the difference between a fake score, a critic trained on the generator's own samples,
and the frozen teacher's (the real score), both at a re-noised x_t = α_t x + σ_t ε, t ~ U[t_min·T, t_max·T]:

    g      = (x̂₀_fake(x_t) − x̂₀_real(x_t)) / mean_dims |x − x̂₀_real(x_t)|        (no gradient)
    L_DM   = ½ · ‖x − sg(x − g)‖² / N                                               (∂L_DM/∂x = g / N)
    L_fake = ‖v_critic(x'_t, t') − v(sg(x), ε', t')‖² / N,  t' ~ U[0, T)            (the critic's DSM)

x̂₀_real uses classifier-free guidance `real_guidance` (1: none); the critic is a trainable copy of the
student (the teacher, at initialisation), scored without guidance. The critic trains every step; the
generator every `generator_every` steps (DMD2's ``dfake_gen_update_ratio``), its loss not computed in
between, so its parameters get no gradient and the optimiser leaves them (and their moments) untouched.
As in the authors' code (tianweiy/DMD2@8d8fa55, ``compute_distribution_matching_loss``, as summarised in the
reference notes), g is `nan_to_num`'d. The models here predict v, so x̂₀ = α_t x_t − σ_t v and the critic's
target is v; the authors' SD models predict ε.

Defaults: the ImageNet-64 setting (no guidance on the real score, ratio 5, t ∈ [0.02, 0.98]·T). Not here
yet: the GAN head on the critic and backward simulation (both options of the paper), and clipping each
network's gradient separately (the loop clips their joint norm).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F
from annotated_types import Ge, Gt, Le

from distillbench.kinds.diffusion.points import guided
from distillbench.methods.base import register_method
from distillbench.methods.diffusion.critic import CriticDistillation, x0_from_velocity


def distribution_matching_loss(sample: torch.Tensor, real_x0: torch.Tensor, fake_x0: torch.Tensor) -> torch.Tensor:
    """DMD's generator loss: its gradient with respect to `sample` is g / N, g the normalised score difference."""
    with torch.no_grad():
        normaliser = (sample - real_x0).abs().mean(dim=tuple(range(1, sample.dim())), keepdim=True)
        gradient = torch.nan_to_num((fake_x0 - real_x0) / normaliser)
    return 0.5 * F.mse_loss(sample, (sample - gradient).detach())


@register_method("dmd2", family="diffusion", paper="Yin et al. 2024, arXiv:2405.14867",
                 summary="distribution matching with a trained fake-score critic, regression-free, two time scales")
@dataclass
class DMD2(CriticDistillation):
    real_guidance: Annotated[float, Ge(1)] = 1.0
    generator_every: Annotated[int, Gt(0)] = 5
    min_timestep: Annotated[float, Ge(0), Le(1)] = 0.02
    max_timestep: Annotated[float, Ge(0), Le(1)] = 0.98

    generator_term = "distribution_matching"
    # the two-time-scale ratio, which the paper sets per setting (5 on ImageNet and SDXL, 10 on SD1.5); 1: none
    search_space = {"generator_every": (1, 5, 10)}

    def generator_loss(self, critic, teacher, scheduler, sample, labels, generator) -> torch.Tensor:
        timesteps, noise = self.renoising(scheduler, sample, generator)
        with torch.no_grad():
            noisy = scheduler.add_noise(sample.detach(), noise, timesteps)
            fake = x0_from_velocity(scheduler, noisy, critic(noisy, timesteps, labels), timesteps)
            real = x0_from_velocity(scheduler, noisy, guided(teacher, noisy, timesteps, labels, self.real_guidance),
                                    timesteps)
        return distribution_matching_loss(sample, real, fake)
