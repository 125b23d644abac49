"""f-distill — distribution matching under any f-divergence (Xu, Nie & Vahdat, "One-step Diffusion Models with
f-Divergence Distribution Matching", arXiv:2502.15681).

DMD's gradient minimises the reverse KL. For an f-divergence D_f(p‖q) = E_q[f(p/q)] the generator's gradient
is DMD's, weighted per sample by h(r) = f''(r)·r² at the density ratio r = p_real/q_fake of its re-noised
sample. A GAN head (`critic.CriticDistillation`, non-saturating, real points against the generator's) gives
the ratio: at its optimum its logit is log(p/q), so

    r = clip(exp(clamp(D(x_t), −10, 10)), r_lo, r_hi)                    (no gradient)
    r ← r / EMA_bin(t)[mean r in t's bin]       (`ratio_normalization`: 10 bins of t, EMA rate `ratio_ema`)
    h = h_f(r) / mean_batch h_f(r)
    L_G = ½ ‖x − sg(x − h·g)‖² / N + w_GAN · mean softplus(−D(x_t))

with g DMD's normalised score difference at the same x_t (`critic.distribution_matching_loss`) and
h_f(r): reverse KL 1 (DMD), forward KL r, Jensen–Shannon r/(1+r), squared Hellinger √r, Jeffreys 1+r.

As NVlabs/FastGen (34f30e8, ``FdistillModel._get_f_div_weighting_h``, the authors' group's public code): the
ratio from the head's logits at the same x_t the score difference is taken at, per-t-bin EMA normalisation,
and h normalised by its batch mean (+10⁻⁶). Defaults: FastGen's ImageNet-64 configuration (Jensen–Shannon,
r ∈ [0.1, 20], EMA rate 0.5, GAN weight 3·10⁻³, DMD2's ratio of 5 critic steps per generator step). FastGen's
normaliser of g adds 10⁻⁶ to mean |x − x̂₀_real|; DMD2's (used here) `nan_to_num`s instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Callable, Literal

import torch
from annotated_types import Ge, Gt, Le

from distillbench.kinds.diffusion.points import guided
from distillbench.methods.base import register_method
from distillbench.methods.diffusion.critic import (CriticDistillation, distribution_matching_loss, gan_generator_loss,
                                                   x0_from_output)

F_DIVERGENCE_WEIGHTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "reverse-kl": torch.ones_like,  # f(r) = −log r: DMD
    "forward-kl": lambda r: r,  # f(r) = r log r
    "js": lambda r: r / (1 + r),  # Jensen–Shannon
    "squared-hellinger": torch.sqrt,  # f(r) = (√r − 1)²
    "jeffreys": lambda r: 1 + r,  # f(r) = (r − 1) log r
}
LOGIT_CLAMP = 10.0


def density_ratio(logits: torch.Tensor, lower: float, upper: float) -> torch.Tensor:
    """r = p/q per sample from the GAN head's logits (B, k): exp of their clamped mean, clipped to [lower, upper]."""
    return logits.detach().float().mean(dim=1).clamp(-LOGIT_CLAMP, LOGIT_CLAMP).exp().clamp(lower, upper)


def bin_normalised_ratio(ratio: torch.Tensor, timesteps: torch.Tensor, total_timesteps: int, bins: torch.Tensor,
                         ema: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(r divided by its t-bin's running mean, the updated bins): `bins` equal-width bins of [0, T) hold an EMA
    (rate `ema`; 0: this batch's mean) of the mean ratio of the samples that fell in them."""
    count = len(bins)
    index = (timesteps.double() / (total_timesteps / count)).floor().long().clamp(0, count - 1)
    samples = torch.bincount(index, minlength=count).float()
    sums = torch.bincount(index, weights=ratio, minlength=count).float()
    seen = samples > 0
    updated = bins.clone().float()
    updated[seen] = updated[seen] * ema + (1 - ema) * (sums / (samples + 1e-6))[seen]
    return ratio / (updated[index] + 1e-6), updated


def f_divergence_weights(ratio: torch.Tensor, divergence: str) -> torch.Tensor:
    """h_f(r) per sample, normalised by its batch mean."""
    weights = F_DIVERGENCE_WEIGHTS[divergence](ratio)
    return weights / (weights.mean() + 1e-6)


@register_method("f-distill", family="diffusion", paper="Xu et al. 2025, arXiv:2502.15681",
                 summary="distribution matching under an f-divergence: DMD's gradient weighted by h(r), the density "
                         "ratio from a GAN head")
@dataclass
class FDistill(CriticDistillation):
    divergence: Literal["reverse-kl", "forward-kl", "js", "squared-hellinger", "jeffreys"] = "js"
    ratio_lower: Annotated[float, Gt(0)] = 0.1
    ratio_upper: Annotated[float, Gt(0)] = 20.0
    ratio_normalization: bool = True
    ratio_bins: Annotated[int, Gt(0)] = 10
    ratio_ema: Annotated[float, Ge(0), Le(1)] = 0.5
    gan_generator_weight: Annotated[float, Gt(0)] = 3e-3  # the head supplies the ratio: no f-distill without it
    gan_discriminator_weight: Annotated[float, Gt(0)] = 1e-2
    real_guidance: Annotated[float, Ge(1)] = 1.0
    generator_every: Annotated[int, Gt(0)] = 5
    min_timestep: Annotated[float, Ge(0), Le(1)] = 0.02
    max_timestep: Annotated[float, Ge(0), Le(1)] = 0.98

    generator_term = "f_divergence"
    search_space = {"divergence": ("forward-kl", "js")}  # the paper's two best on ImageNet-64 and CIFAR-10

    def check(self) -> list[str]:
        problems = super().check()
        return problems + ([] if self.ratio_lower < self.ratio_upper else ["ratio_lower: below ratio_upper"])

    def state_dict(self) -> dict[str, Any]:
        bins = getattr(self, "_bins", None)
        return {"ratio_bins": bins.tolist()} if bins is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._bins: torch.Tensor | None = torch.tensor(state["ratio_bins"]) if "ratio_bins" in state else None

    def weights(self, logits: torch.Tensor, timesteps: torch.Tensor, total_timesteps: int) -> torch.Tensor:
        """h per sample; moves the ratio's t-bin EMA (the method's state) when normalising."""
        ratio = density_ratio(logits, self.ratio_lower, self.ratio_upper)
        if self.ratio_normalization:
            bins = getattr(self, "_bins", None)
            bins = bins if bins is not None else torch.ones(self.ratio_bins)
            ratio, self._bins = bin_normalised_ratio(ratio, timesteps.cpu(), total_timesteps, bins.cpu(), self.ratio_ema)
        return f_divergence_weights(ratio, self.divergence).to(logits.device)

    def generator_terms(self, module, batch: dict, sample: torch.Tensor) -> dict[str, torch.Tensor]:
        teacher, scheduler, labels, generator = batch["teacher"], batch["scheduler"], batch["class_labels"], batch["generator"]
        timesteps, noise = self.renoising(scheduler, sample, generator)
        noisy = scheduler.add_noise(sample, noise, timesteps)  # keeps the generator's graph, for the GAN term
        with torch.no_grad():
            fake = x0_from_output(scheduler, noisy, module.critic(noisy, timesteps, labels), timesteps)
            real = x0_from_output(scheduler, noisy, guided(teacher, noisy, timesteps, labels, self.real_guidance),
                                    timesteps)
        logits = self.discriminator_logits(module.discriminator, teacher, noisy, timesteps, labels)
        weights = self.weights(logits, timesteps, scheduler.config.num_train_timesteps)
        return {self.generator_term: distribution_matching_loss(sample, real, fake, weights),
                "gan": self.gan_generator_weight * gan_generator_loss(logits)}
