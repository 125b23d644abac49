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

The GAN term (`critic.CriticDistillation`): a head on the frozen teacher's features at re-noised samples,
trained every step on real points against the generator's (weight `gan_discriminator_weight`), and the
generator's non-saturating term with weight `gan_generator_weight` (0: the paper's "w/o GAN" ablation).

Multi-step generators (the paper's SDXL 4-step students): with `generator_steps` = k > 1 the generator
denoises at the k timesteps of the consistency sampler that scores it ([999, 749, 499, 249] for 4), one of
them drawn per step; the loss is taken on its x̂₀ there (`critic.CriticDistillation.generator_sample`). The
state it denoises is a data point noised to that timestep, or, with `backward_simulation`, the state its own
earlier steps reach from noise (run without gradient, re-noised with fresh noise), which removes the mismatch
between the states it trains on and those it meets when sampling (the paper's section 4.4).

Defaults: the ImageNet-64 setting (a one-step generator, no guidance on the real score, ratio 5,
t ∈ [0.02, 0.98]·T, GAN weights 3·10⁻³ for the generator and 10⁻² for the head). Not here: clipping each
network's gradient separately (the loop clips their joint norm).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from annotated_types import Ge, Gt, Le

from distillbench.core.recipe import KEY_MARKER, WHEN_SET
from distillbench.methods.base import register_method
from distillbench.methods.diffusion.dmd import DMD


@register_method("dmd2", family="diffusion", paper="Yin et al. 2024, arXiv:2405.14867",
                 summary="distribution matching with a trained fake-score critic, regression-free, two time scales")
@dataclass
class DMD2(DMD):
    """DMD's generator loss (`dmd.DMD.generator_loss`) without its regression term, with two time scales and a
    GAN term."""

    regression_weight: Annotated[float, Ge(0)] = 0.0  # regression-free: no paired teacher solutions
    real_guidance: Annotated[float, Ge(1)] = 1.0
    generator_every: Annotated[int, Gt(0)] = 5
    min_timestep: Annotated[float, Ge(0), Le(1)] = 0.02
    max_timestep: Annotated[float, Ge(0), Le(1)] = 0.98
    gan_generator_weight: Annotated[float, Ge(0)] = 3e-3
    gan_discriminator_weight: Annotated[float, Gt(0)] = 1e-2
    # added after the first board: in the cell key only when set
    generator_steps: Annotated[int, Gt(0)] = field(default=1, metadata={KEY_MARKER: WHEN_SET})
    backward_simulation: bool = field(default=False, metadata={KEY_MARKER: WHEN_SET})

    # the two-time-scale ratio, which the paper sets per setting (5 on ImageNet and SDXL, 10 on SD1.5); 1: none
    search_space = {"generator_every": (1, 5, 10)}
