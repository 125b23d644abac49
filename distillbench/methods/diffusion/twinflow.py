"""TwinFlow (inclusionAI 2025, "TwinFlow: Realizing One-step Generation on Large Models with Self-adversarial
Flows"; read in github inclusionAI/TwinFlow at a109a71, ``src/methodes/twinflow/twinflow.py`` and the MNIST
tutorial's ``methodes.py``).

One network, an any-step flow map F(x_t, t, s, c) on the linear path x_t = t·z + (1 − t)·x (noise z at t = 1;
`points.FlowMapDenoiser`), is at once the generator, the "real" velocity and the "fake" velocity: t < 0 is the
twin trajectory whose data end is the model's own one-step sample. No teacher: it learns from data, with an EMA
copy of itself as the reference of its consistency target. Each step splits the batch into four quarters
(t ~ U(0, 1)):

    e2e (t = 1, s = 0), mul (s ∈ [0.95 t, t]), any (s ~ U(0, t)): v = z − x, enhanced by guidance
        v ← v + w (F_ema(x_t, t, t, c) − F_ema(x_t, t, t, ∅)) for prompted samples (w = `enhanced_ratio`);
        RCGM's target (no gradient; Δ = `delta`, N = `order`): x′ = x_t − Δ v, t_m = max(t − Δ, s),
        D = Σ_{i<N} F_ema(x_i, t_i, t_{i+1}) (t_i − t_{i+1}) over N jumps from t_m to s,
        r = ((t − s) F − D − Δ v)/Δ when t − s ≥ Δ, else F − v;   target = sg(F) − clip(r, −1, 1)
    adv: x_f = sg(z′ − F(z′, 1, 0, c)), x_t = t z + (1 − t) x_f, F at (−t, −t), target z − x_f
    L_flow    = mean_batch ρ(F − target) · w(t, s),  w = tan((1 − (|t| − |s|)) π / 2.5) + 1 (1 for adv)
    L_rectify = ½ mean_e2e ρ(F(z, 1, 0) − sg(F(z, 1, 0) − g)),  g = clip(F(x_τ, −τ, −τ) − F(x_τ, τ, τ), −1, 1)
                at x_τ = τ z″ + (1 − τ) sg(z − F(z, 1, 0)), τ ~ U(0, 1), no gradient through g

ρ is the pseudo-Huber distance √(‖r‖² + c²) − c (the code's Barron loss with α = 1, c = 10⁻³). L_rectify is
DMD's direction with one network: a descent step moves the generator's sample by +(v_fake − v_real), towards
the real denoiser and away from the fake one. Sampling: x = z − F(z, 1, 0) in one step; k jumps of the map
over evenly spaced times otherwise.

Defaults: the code's (enhanced_ratio 0.5, order 2, Δ 0.01, EMA 0.99, rectify weight ½ (``dist_match_cof``),
four equal quarters); the EMA decay's warm-up in the code is not here. On the pocket world the network is a
flow map of the student's width and depth, trained from scratch on the prompt pool's points (the teacher's
weights are a DDPM denoiser's, another parametrisation); it evaluates no teacher. What is saved is the trained
network, not its EMA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Ge, Gt, Le, Lt
from torch import nn

from distillbench.kinds.diffusion.points import FlowMapDenoiser
from distillbench.methods.base import register_method
from distillbench.methods.diffusion.critic import per_sample
from distillbench.methods.diffusion.lcm import ConsistencyTraining, StudentAndTarget

E2E, MUL, ANY, ADV = range(4)  # the batch's quarters, by position


def pseudo_huber(residual: torch.Tensor, c: float) -> torch.Tensor:
    """√(‖r‖² + c²) − c per sample."""
    return torch.sqrt((residual**2).sum(dim=tuple(range(1, residual.dim()))) + c**2) - c


def time_weight(t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """tan((1 − (|t| − |s|)) π / 2.5) + 1: 1 for the whole interval, about 4.08 for a vanishing one."""
    return torch.tan((1 - (t.abs() - s.abs())) * math.pi / 2.5) + 1


@torch.no_grad()
def rcgm_target(prediction: torch.Tensor, reference, noisy: torch.Tensor, t: torch.Tensor, s: torch.Tensor,
                velocity: torch.Tensor, labels, delta: float, order: int) -> torch.Tensor:
    """sg(F) − clip(r, −1, 1): r the residual of F's jump over [s, t] against a Δ step along v and `order`
    jumps of the reference map from t − Δ to s (F − v where t − s < Δ)."""
    column = lambda values: per_sample(values, noisy)  # noqa: E731
    state, middle = noisy - delta * velocity, torch.maximum(t - delta, s)
    displacement = torch.zeros_like(noisy)
    for index in range(order):
        start = middle + (s - middle) * index / order
        end = middle + (s - middle) * (index + 1) / order
        jump = reference(state, start, end, labels) * column(start - end)
        displacement, state = displacement + jump, state - jump
    far = column(t - s >= delta)
    consistent = (column(t - s) * prediction - displacement - delta * velocity) / delta
    residual = torch.where(far, consistent, prediction - velocity)
    return prediction.detach() - residual.clamp(-1, 1)


@register_method("twinflow", family="diffusion", paper="inclusionAI 2025, TwinFlow (github inclusionAI/TwinFlow)",
                 summary="one any-step flow map as generator, real and fake velocity (negative time), trained "
                         "from data with RCGM's consistency target and a self-adversarial rectification")
@dataclass
class TwinFlow(ConsistencyTraining):
    enhanced_ratio: Annotated[float, Ge(0)] = 0.5
    order: Annotated[int, Gt(0)] = 2
    delta: Annotated[float, Gt(0), Lt(1)] = 0.01
    ema_decay: Annotated[float, Ge(0), Lt(1)] = 0.99
    rectify_weight: Annotated[float, Ge(0)] = 0.5
    mul_interval: Annotated[float, Gt(0), Le(1)] = 0.05  # the mul quarter's s ∈ [(1 − this) t, t]
    huber_c: Annotated[float, Gt(0)] = 1e-3

    search_space = {"ema_decay": (0.99, 0.999)}  # the tutorial's reference and a slower one

    def training_module(self, student: nn.Module) -> nn.Module:
        """A fresh flow map as wide and deep as the student (its weights are another parametrisation's)."""
        config = student.config
        return StudentAndTarget(FlowMapDenoiser(config.dimension, config.classes, config.hidden, config.layers))

    def teacher_forwards(self, batch: dict) -> int:
        return 0

    def loss(self, module: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        model, reference = module.student, module.target
        clean, noise, labels, draws = batch["clean"], batch["noise"], batch["class_labels"], batch["generator"]
        count, device = len(clean), clean.device
        quarter = torch.arange(count, device=device) % 4
        t = torch.rand(count, generator=draws).to(device)
        u = torch.rand(count, generator=draws).to(device)
        t = torch.where(quarter == E2E, torch.ones_like(t), t)
        s = torch.where(quarter == E2E, torch.zeros_like(t),
                        torch.where(quarter == MUL, t - self.mul_interval * u * t, t - u * t))
        base = quarter != ADV
        column = lambda values: per_sample(values, clean)  # noqa: E731
        with torch.no_grad():
            fresh = torch.randn(clean.shape, generator=draws).to(device)
            fake = fresh - model(fresh, 1.0, 0.0, labels)  # the model's own one-step samples (the twin's data)
        data = torch.where(column(base), clean, fake)
        noisy = column(t) * noise + column(1 - t) * data
        velocity = noise - data
        velocity = velocity + self.guidance_enhancement(reference, noisy, t, labels, base)
        signed_t, signed_s = torch.where(base, t, -t), torch.where(base, s, -t)
        prediction = model(noisy, signed_t, signed_s, labels)
        consistency = rcgm_target(prediction, reference, noisy, t, s, velocity, labels, self.delta, self.order)
        target = torch.where(column(base), consistency, velocity)
        weight = torch.where(base, time_weight(t, s), torch.ones_like(t))
        flow = (pseudo_huber(prediction - target, self.huber_c) * weight).mean()
        ends = quarter == E2E
        terms = {"flow": flow}
        if self.rectify_weight and ends.any():
            terms["rectify"] = self.rectify_weight * self.rectification(model, prediction[ends], noise[ends],
                                                                        labels[ends], draws)
        return terms

    @torch.no_grad()
    def guidance_enhancement(self, reference, noisy, t, labels, base) -> torch.Tensor:
        """w (F_ema(x_t, t, t, c) − F_ema(x_t, t, t, ∅)) on the prompted samples of the base quarters, else 0."""
        prompted = base & (labels < reference.null_class)
        if not self.enhanced_ratio or not prompted.any():
            return torch.zeros_like(noisy)
        gap = reference(noisy, t, t, labels) - reference(noisy, t, t, None)
        return self.enhanced_ratio * gap * per_sample(prompted, noisy)

    def rectification(self, model, one_step: torch.Tensor, noise, labels, draws) -> torch.Tensor:
        """½-weighted outside: ρ(F − sg(F − g)) on the end-to-end jumps F(z, 1, 0), g the gap between the
        model's fake and real velocities at its own samples re-noised to τ."""
        with torch.no_grad():
            samples = noise - one_step
            tau = torch.rand(len(noise), generator=draws).to(noise.device)
            column = per_sample(tau, noise)
            noisy = column * torch.randn(noise.shape, generator=draws).to(noise.device) + (1 - column) * samples
            gap = (model(noisy, -tau, -tau, labels) - model(noisy, tau, tau, labels)).clamp(-1, 1)
        return pseudo_huber(one_step - (one_step - gap).detach(), self.huber_c).mean()
