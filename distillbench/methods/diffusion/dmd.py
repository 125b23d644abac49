"""DMD — Distribution Matching Distillation (Yin, Gharbi, Zhang, Shechtman, Durand, Freeman & Park,
"One-step Diffusion with Distribution Matching Distillation", arXiv:2311.18828; CVPR 2024).

The one-step generator x = G(z, c) minimises the reverse KL to the teacher's distribution, whose gradient is
the difference of a fake score (a critic fitted to the generator's samples by denoising score matching) and
the teacher's real score at re-noised samples (eq. 7–8), plus a regression loss to the teacher's own
deterministic ODE solutions from the same noise (eq. 9), which anchors the generator against mode collapse:

    g      = (x̂₀_fake(x_t) − x̂₀_real(x_t)) / mean_dims |x − x̂₀_real(x_t)|      (no gradient; = w_t ∇ of eq. 8)
    L_KL   = ½ ‖x − sg(x − g)‖² / N                                             (`critic.distribution_matching_loss`)
    L_reg  = d(G(z_ref), y_ref),  y_ref = the teacher's ODE solution from z_ref
    L_G    = L_KL + λ_reg · L_reg

The critic and the generator update every step (DMD2 later added the two-time-scale rule and dropped L_reg).
Defaults: the paper's λ_reg = 0.25 and t ∈ [0.02, 0.98]·T, no guidance on the real score (its ImageNet
setting, as DMD2's).

As in the paper, the pairs are a fixed set made once before training (`prepare`): `pairs` noises z_ref
(seeded by the run's seed) with prompts from the prompt pool, each solved by the teacher with deterministic
DDIM in `regression_steps` steps; each generator step regresses G on a batch of them (as many as the step's
prompts). Their cost, `pairs` × `regression_steps` teacher evaluations (twice with guidance), counts in the
first step's teacher_forwards. One departure, forced by the pocket world: d is the mean squared distance,
since LPIPS (the paper's d) is a perceptual distance on images and these samples are points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F
from annotated_types import Ge, Gt, Le

from distillbench.kinds.diffusion.points import solve
from distillbench.methods.base import register_method
from distillbench.methods.diffusion.critic import CriticDistillation, distribution_matching_at, one_step_sample


def regression_loss(sample: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """DMD's L_reg with the mean squared distance: mean over samples of ‖G(z) − y_ref‖² / dims."""
    return F.mse_loss(sample, reference.detach())


@register_method("dmd", family="diffusion", paper="Yin et al. 2024, arXiv:2311.18828",
                 summary="distribution matching with a fake-score critic and a regression loss to the teacher's "
                         "ODE solutions")
@dataclass
class DMD(CriticDistillation):
    regression_weight: Annotated[float, Ge(0)] = 0.25
    regression_steps: Annotated[int, Gt(0)] = 50
    # the paired set's size: the paper's ImageNet set is tens of thousands of pairs; the pocket prompt pool's 4,096
    pairs: Annotated[int, Gt(0)] = 4096
    real_guidance: Annotated[float, Ge(1)] = 1.0
    min_timestep: Annotated[float, Ge(0), Le(1)] = 0.02
    max_timestep: Annotated[float, Ge(0), Le(1)] = 0.98
    generator_every: Annotated[int, Gt(0)] = 1  # DMD updates both networks every step

    generator_term = "distribution_matching"
    search_space = {"regression_weight": (0.25, 1.0)}  # the paper's 0.25 and a heavier anchor

    def prepare(self, run) -> None:
        """The paired set: noises, their prompts (the pool's, the empty prompt at the data's share) and the
        teacher's deterministic solutions from them; a pure function of the run's seed."""
        self._pairs = None
        if self.regression_weight == 0:
            return
        batching, generator = run.batching, torch.Generator().manual_seed(run.seed * 7_919 + 17)
        labels = batching.prompts[torch.randint(len(batching.prompts), (self.pairs,), generator=generator)].clone()
        labels[torch.rand(self.pairs, generator=generator) < batching.null_fraction] = batching.null_class
        noise = torch.randn((self.pairs, *batching.sample_shape), generator=generator)
        solutions = solve(run.frozen["teacher"], dict(batching.scheduler.config), noise, self.regression_steps, labels,
                          self.real_guidance)
        self._pairs = (noise.to(run.device), labels.to(run.device), solutions.to(run.device))

    def teacher_forwards(self, batch: dict) -> int:
        """The real score per sample on every step; the paired set's solutions once, on the first step."""
        pairs = self.pairs * self.regression_steps * (2 if self.real_guidance != 1.0 else 1)
        return super().teacher_forwards(batch) + (pairs if batch["step"] == 0 and self.regression_weight > 0 else 0)

    def generator_loss(self, critic, teacher, scheduler, sample, labels, generator) -> torch.Tensor:
        timesteps, noise = self.renoising(scheduler, sample, generator)
        return distribution_matching_at(critic, teacher, scheduler, sample, timesteps, noise, labels, self.real_guidance)

    def generator_terms(self, module, batch: dict, sample: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = super().generator_terms(module, batch, sample)
        if self.regression_weight > 0:
            noise, labels, solutions = self._pairs
            chosen = torch.randint(len(noise), (len(sample),), generator=batch["generator"]).to(noise.device)
            generated = one_step_sample(module.generator, batch["scheduler"], noise[chosen], labels[chosen])
            terms["regression"] = self.regression_weight * regression_loss(generated, solutions[chosen])
        return terms
