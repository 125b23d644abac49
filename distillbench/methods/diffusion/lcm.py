"""LCM — latent consistency distillation (Luo, Tan, Huang, Li & Zhao, "Latent Consistency Models:
Synthesizing High-Resolution Images with Few-Step Inference", arXiv:2310.04378), as diffusers'
``train_lcm_distill_sd_wds.py`` implements it (the baseline of the few-step methods).

The student learns the consistency function of the teacher's probability-flow ODE on a skipping schedule of
`ddim_steps` DDIM timesteps: for a data point x₀, a DDIM timestep t_s and t_e = t_s − T/`ddim_steps`,

    z      = α_{t_s} x₀ + σ_{t_s} ε
    pred   = c_skip(t_s) z + c_out(t_s) x̂₀_θ(z, t_s)
    x̂₀_g, ε̂_g = the teacher's guided predictions at (z, t_s), guidance w          (no gradient)
    z'     = α_{t_e} x̂₀_g + σ_{t_e} ε̂_g                                           (one DDIM step)
    target = c_skip(t_e) z' + c_out(t_e) x̂₀_EMA(z', t_e)                           (no gradient)
    L      = mean(√((pred − target)² + c²) − c)   (the pseudo-Huber loss; `loss: l2` for the mean square)

with diffusers' boundary scalings c_skip(t) = σ_d² / ((s t)² + σ_d²), c_out(t) = s t / √((s t)² + σ_d²),
σ_d = 0.5, s = 10. The target network is an EMA of the student (`ema_decay`), updated after every step.

Defaults: the script's (50 DDIM steps, EMA 0.95, Huber c = 10⁻³). Here the guidance is one fixed scale
(`guidance`, default 1: none, for an unconditional student) where the script draws w ~ U[w_min, w_max] and
conditions the student on it; the student is the one saved (the script saves it too). Sampling the student
with DDIM uses x̂₀ from its v prediction, which equals the consistency output wherever c_skip ≈ 0 (t ≥ 20).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from annotated_types import Ge, Gt, Lt
from torch import nn

from distillbench.kinds.diffusion.points import guided
from distillbench.methods.base import Method, register_method
from distillbench.methods.diffusion.critic import per_sample, x0_and_noise, x0_from_output

SIGMA_DATA, TIMESTEP_SCALING = 0.5, 10.0


def boundary_scalings(timesteps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(c_skip, c_out) at integer timesteps, as diffusers' ``scalings_for_boundary_conditions``."""
    scaled = timesteps.double() * TIMESTEP_SCALING
    c_skip = SIGMA_DATA**2 / (scaled**2 + SIGMA_DATA**2)
    c_out = scaled / (scaled**2 + SIGMA_DATA**2) ** 0.5
    return c_skip.float(), c_out.float()


def consistency_loss(prediction: torch.Tensor, target: torch.Tensor, loss: str = "huber",
                     huber_c: float = 1e-3) -> torch.Tensor:
    """The pseudo-Huber distance mean(√(d² + c²) − c), or the mean square, between output and target."""
    difference = prediction.float() - target.float()
    if loss == "l2":
        return (difference**2).mean()
    return (torch.sqrt(difference**2 + huber_c**2) - huber_c).mean()


def ddim_step(scheduler, noisy: torch.Tensor, output: torch.Tensor, start: torch.Tensor, end: torch.Tensor
              ) -> torch.Tensor:
    """Deterministic DDIM (η = 0) from t_s to t_e: α_e x̂₀ + σ_e ε̂, with x̂₀ and ε̂ read from the model's output
    at t_s (`x0_and_noise`; for v: x̂₀ = α_s x − σ_s v, ε̂ = σ_s x + α_s v), no clipping, as the LCM script's
    solver."""
    alphas = scheduler.alphas_cumprod.to(noisy.device, noisy.dtype)
    x0, epsilon = x0_and_noise(scheduler, noisy, output, start)
    return per_sample(alphas[end].sqrt(), noisy) * x0 + per_sample((1 - alphas[end]).sqrt(), noisy) * epsilon


class StudentAndTarget(nn.Module):
    """The student (trained and saved) and its EMA target network (moved after each step, never trained)."""

    def __init__(self, student: nn.Module):
        super().__init__()
        self.student = student
        self.target = copy.deepcopy(student).requires_grad_(False)


class ConsistencyTraining(Method):
    """What the consistency methods share (LCM, Hyper-SD): the student and its EMA target network, the target
    moved after every step, and one teacher evaluation per sample (two with guidance)."""

    data_kind = "diffusion"
    normalize_by = "examples"
    guidance: float = 1.0  # dataclass fields in the subclasses
    ema_decay: float = 0.95

    def training_module(self, student: nn.Module) -> nn.Module:
        return StudentAndTarget(student)

    def trained_model(self, module: nn.Module) -> nn.Module:
        return module.student

    def teacher_forwards(self, batch: dict) -> int:
        return len(batch["class_labels"]) * (2 if self.guidance != 1.0 else 1)

    def after_step(self, run) -> dict[str, float]:
        with torch.no_grad():
            for target, online in zip(run.unwrapped.target.parameters(), run.unwrapped.student.parameters()):
                target.mul_(self.ema_decay).add_(online.detach(), alpha=1 - self.ema_decay)
        return {}


@register_method("lcm", family="diffusion", paper="Luo et al. 2023, arXiv:2310.04378",
                 summary="consistency distillation on the teacher's DDIM skipping schedule, with an EMA target")
@dataclass
class LCM(ConsistencyTraining):
    ddim_steps: Annotated[int, Gt(1)] = 50
    guidance: Annotated[float, Ge(1)] = 1.0
    ema_decay: Annotated[float, Ge(0), Lt(1)] = 0.95
    loss_type: Literal["huber", "l2"] = "huber"
    huber_c: Annotated[float, Gt(0)] = 1e-3

    search_space = {"ema_decay": (0.95, 0.99)}  # the script's default and a slower target

    def loss(self, student: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        scheduler, labels, generator, clean = batch["scheduler"], batch["class_labels"], batch["generator"], batch["clean"]
        total = scheduler.config.num_train_timesteps
        skip = total // self.ddim_steps
        index = torch.randint(self.ddim_steps, (len(clean),), generator=generator)
        start = (index * skip + skip - 1).to(clean.device)  # DDIM timesteps skip−1, 2·skip−1, …, T−1 (as the script)
        end = (start - skip).clamp_min(0)
        noise = torch.randn(clean.shape, generator=generator).to(clean.device)
        noisy = scheduler.add_noise(clean, noise, start)
        c_skip, c_out = boundary_scalings(start)
        x0 = x0_from_output(scheduler, noisy, student.student(noisy, start, labels), start)
        prediction = per_sample(c_skip, noisy) * noisy + per_sample(c_out, noisy) * x0
        with torch.no_grad():
            target = self._target(student.target, batch["teacher"], scheduler, noisy, start, end, labels)
        return {"consistency": consistency_loss(prediction, target, self.loss_type, self.huber_c)}

    def _target(self, target_network, teacher, scheduler, noisy, start, end, labels) -> torch.Tensor:
        """One guided DDIM step of the teacher from t_s to t_e, then the EMA network's consistency output."""
        previous = ddim_step(scheduler, noisy, guided(teacher, noisy, start, labels, self.guidance), start, end)
        c_skip, c_out = boundary_scalings(end)
        target_x0 = x0_from_output(scheduler, previous, target_network(previous, end, labels), end)
        return per_sample(c_skip, previous) * previous + per_sample(c_out, previous) * target_x0
