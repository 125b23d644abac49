"""Diversity distillation — hybrid inference (Gandikota & Bau, "Distilling Diversity and Control in Diffusion
Models", arXiv:2503.10637).

A distilled few-step model loses the base model's sample diversity, and the paper finds that diversity is
decided in the first denoising step. Hybrid inference gives that step back to the base model and the rest to
the distilled one, at the distilled model's step count:

    x_{t_1} = S(x_{t_0}, f_base(x_{t_0}, t_0; w_base))            (the first `base_steps` steps: the base)
    x_{t_i+1} = S(x_{t_i}, f_distilled(x_{t_i}, t_i))              (the rest: the distilled student)

with S one sampler and one schedule for both (the points world's: the benchmark's own, e.g. the consistency
sampler at 4 steps). Nothing is trained: the method takes no optimizer step (`training_steps` is 0), starts
from another method's student (the recipe's `starts_from`, e.g. DMD2's) and saves the hybrid, whose folder
holds the distilled denoiser, the base (the frozen teacher, which the student was distilled from) and the
base's share (`points.HybridDenoiser`, `hybrid.json`). Its cost is the base's evaluations at sampling time:
with `base_guidance` ≠ 1 the base step evaluates the base twice.

As in the authors' code (rohitgandikota/distillation@f83b1fc, read, not copied): the base model with its own
guidance (7 for SDXL there) takes the first step, then the distilled model (DMD2, guidance 0) the rest.
Defaults: one base step, and no guidance on it (the 2-D pocket board is unconditional). The paper's control
distillation (an adapter trained on the base loaded unchanged into the distilled model) needs LoRA students
and is not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from annotated_types import Ge, Gt
from torch import nn

from distillbench.kinds.diffusion.points import HybridDenoiser
from distillbench.methods.base import Method, register_method


@register_method("diversity-distillation", family="diffusion", paper="Gandikota & Bau 2025, arXiv:2503.10637",
                 summary="hybrid inference: the base model takes the first sampling step(s), the distilled student "
                         "the rest; trains nothing")
@dataclass
class DiversityDistillation(Method):
    base_steps: Annotated[int, Gt(0)] = 1
    base_guidance: Annotated[float, Ge(1)] = 1.0

    data_kind = "diffusion"
    normalize_by = "examples"

    def training_steps(self, budget) -> int:
        return 0  # sampling changes, weights do not

    def prepare(self, run) -> None:
        self._base = run.frozen["teacher"]

    def training_module(self, student: nn.Module) -> nn.Module:
        return HybridDenoiser(self._base, student, self.base_steps, self.base_guidance)

    def teacher_forwards(self, batch: dict) -> int:
        return 0

    def loss(self, student, batch):
        raise RuntimeError("diversity-distillation trains no steps: it changes how the student samples")
