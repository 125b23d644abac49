"""SNOOPI's proper guidance, PG-SB (Nguyen, Nguyen, Dao, Nguyen, Pham, Tran & Tran, "SNOOPI: Supercharged
One-step Diffusion Distillation with Proper Guidance", arXiv:2412.02687).

SwiftBrush distils a one-step student with variational score distillation: the student's sample, re-noised,
is pulled along the difference between a LoRA teacher that tracks the student (here the fake-score critic)
and the frozen teacher, both with classifier-free guidance at one fixed scale. PG-SB draws the guidance scale
κ at random every iteration and uses the same κ in both teachers (its v1 ablation: FID 9.03 with both, 10.72
fixed, 9.51 on the LoRA teacher alone):

    κ ~ U[κ_min, κ_max],  ε̂(x, t, y, κ) = (1 − κ) ε(x, t) + κ ε(x, t, y)                    (eq. 4)
    ∇_θ L = E[w(t) (ε̂_critic(x_t, t, y, κ) − ε̂_teacher(x_t, t, y, κ)) ∂x/∂θ],  x = G_θ(z, y)

in the x₀ form with DMD's normaliser (`critic.distribution_matching_loss`, as NVlabs/FastGen writes VSD), and
the critic's denoising loss on the student's detached samples every step (the updates alternate).

Defaults: κ ~ U(0.5, 4), the paper's SD1.5 and SD2.1 range (U(0.5, 3) for PixArt-α); one κ per step (whether
the paper draws it per sample is not stated). Not here: NASA, the paper's negative prompts through cross-
attention (the point models have no attention), and SwiftBrush v2's clamped CLIP loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Ge, Gt, Le

from distillbench.methods.base import register_method
from distillbench.methods.diffusion.critic import CriticDistillation, distribution_matching_at


def random_guidance(low: float, high: float, generator: torch.Generator) -> float:
    """κ ~ U[low, high), one per step."""
    return low + (high - low) * float(torch.rand((), generator=generator))


@register_method("snoopi", family="diffusion", paper="Nguyen et al. 2024, arXiv:2412.02687",
                 summary="SwiftBrush's variational score distillation with one random guidance scale in both the "
                         "teacher and the critic (PG-SB)")
@dataclass
class SNOOPI(CriticDistillation):
    guidance_min: Annotated[float, Ge(0)] = 0.5
    guidance_max: Annotated[float, Gt(0)] = 4.0
    generator_every: Annotated[int, Gt(0)] = 1
    min_timestep: Annotated[float, Ge(0), Le(1)] = 0.02
    max_timestep: Annotated[float, Ge(0), Le(1)] = 0.98

    generator_term = "variational_score"
    search_space = {"guidance_max": (3.0, 4.0)}  # the paper's PixArt-α and SD ranges

    def check(self) -> list[str]:
        problems = super().check()
        # min = max is SwiftBrush's one fixed scale: PG-SB's control
        return problems + ([] if self.guidance_min <= self.guidance_max else ["guidance_min: at most guidance_max"])

    def teacher_forwards(self, batch: dict) -> int:
        """Two teacher evaluations per sample (conditional and unconditional) on the generator's steps."""
        return 2 * len(batch["class_labels"]) if self.generator_step(batch["step"]) else 0

    def generator_loss(self, critic, teacher, scheduler, sample, labels, generator) -> torch.Tensor:
        kappa = random_guidance(self.guidance_min, self.guidance_max, generator)
        timesteps, noise = self.renoising(scheduler, sample, generator)
        return distribution_matching_at(critic, teacher, scheduler, sample, timesteps, noise, labels, kappa, kappa)
