"""Decoupled DMD (Liu, Gao, Liu, Du, Li, Wu, Jin, Cao, Zhang, Li & Hoi, "Decoupled DMD: CFG Augmentation as the
Spear, Distribution Matching as the Shield", arXiv:2511.22677; ICLR 2026).

DMD with classifier-free guidance α on the real score splits into two terms (eq. 6): distribution matching
(DM), the conditional real score against the conditional fake one, and CFG augmentation (CA), the real model's
conditional score against its unconditional one. The paper finds CA the engine of few-step distillation and
DM its regulariser, and gives them separate re-noising schedules (eq. 8, algorithm 1):

    Δ_DM = x̂₀_real(x_τDM, c) − x̂₀_fake(x_τDM, c),              τ_DM ~ U over the whole range
    Δ_CA = (α − 1)(x̂₀_real(x_τCA, c) − x̂₀_real(x_τCA, ∅)),     τ_CA ~ U from clean to the student's own timestep
    L_G  = ‖x − sg(x + λ(Δ_DM + Δ_CA))‖² / N                   (the proxy loss; x̂₀ space, no normaliser)

The critic (the fake model) is conditional and trained by denoising score matching on the generator's samples
(`critic.CriticDistillation`). Both schedules are the paper's "hybrid" configuration, which it recommends. In the
paper's convention t = 0 is pure noise, so τ_CA ~ U(t, 1) means "no noisier than the student's input"; here a
one-step generator starts at the last training timestep, so τ_CA spans the same range as τ_DM and the two terms
differ only in their independent draws. CA needs prompts: with every prompt the empty one (an unconditional
student) Δ_CA is 0 and the method is DMD2's regression-free matching without a normaliser.

The paper does not state α, λ or the critic's update ratio (its SDXL runs reuse "DMD2's exact configuration",
guidance 8 there). The defaults here: α = 1.75 (DMD2's SD1.5 real guidance, the smaller of its text-to-image
settings), λ = 1 and DMD2's ratio of 5 critic steps per generator step; `search_space` tunes α. The authors'
training code is not public (Tongyi-MAI/Z-Image holds inference only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F
from annotated_types import Ge, Gt, Le

from distillbench.methods.base import register_method
from distillbench.methods.diffusion.critic import CriticDistillation, x0_from_output


def decoupled_matching_loss(sample: torch.Tensor, matching: torch.Tensor, augmentation: torch.Tensor,
                            weight: float = 1.0) -> torch.Tensor:
    """The proxy loss ‖x − sg(x + λ(Δ_DM + Δ_CA))‖² / N: its gradient with respect to x is −2λ(Δ_DM + Δ_CA) / N."""
    target = (sample + weight * (matching + augmentation)).detach()
    return F.mse_loss(sample, target)


@register_method("decoupled-dmd", family="diffusion", paper="Liu et al. 2025, arXiv:2511.22677",
                 summary="DMD split into CFG augmentation (the engine) and distribution matching (the regulariser), "
                         "each with its own re-noising schedule")
@dataclass
class DecoupledDMD(CriticDistillation):
    guidance: Annotated[float, Ge(1)] = 1.75
    proxy_weight: Annotated[float, Gt(0)] = 1.0
    generator_every: Annotated[int, Gt(0)] = 5
    min_timestep: Annotated[float, Ge(0), Le(1)] = 0.02
    max_timestep: Annotated[float, Ge(0), Le(1)] = 0.98

    generator_term = "decoupled_matching"
    search_space = {"guidance": (1.75, 3.0, 8.0)}  # DMD2's SD1.5 and SDXL real guidance, and one between

    def teacher_forwards(self, batch: dict) -> int:
        """The real model's conditional score at τ_DM, and its conditional and unconditional ones at τ_CA."""
        return 3 * len(batch["class_labels"]) if self.generator_step(batch["step"]) else 0

    def augmentation_renoising(self, scheduler, sample: torch.Tensor, generator: torch.Generator
                               ) -> tuple[torch.Tensor, torch.Tensor]:
        """(τ_CA, noise): no noisier than the student's input (the last training timestep for a one-step
        generator), from the same lower bound as τ_DM."""
        student_timestep = scheduler.config.num_train_timesteps - 1
        low = int(self.min_timestep * scheduler.config.num_train_timesteps)
        timesteps = torch.randint(low, student_timestep + 1, (len(sample),), generator=generator)
        return timesteps.to(sample.device), torch.randn(sample.shape, generator=generator).to(sample.device)

    def generator_loss(self, critic, teacher, scheduler, sample, labels, generator) -> torch.Tensor:
        def x0(model, noisy, timesteps, prompt):
            return x0_from_output(scheduler, noisy, model(noisy, timesteps, prompt), timesteps)

        with torch.no_grad():
            timesteps, noise = self.renoising(scheduler, sample, generator)
            noisy = scheduler.add_noise(sample.detach(), noise, timesteps)
            matching = x0(teacher, noisy, timesteps, labels) - x0(critic, noisy, timesteps, labels)
            timesteps, noise = self.augmentation_renoising(scheduler, sample, generator)
            noisy = scheduler.add_noise(sample.detach(), noise, timesteps)
            augmentation = (self.guidance - 1) * (x0(teacher, noisy, timesteps, labels)
                                                  - x0(teacher, noisy, timesteps, None))
        return decoupled_matching_loss(sample, matching, augmentation, self.proxy_weight)
