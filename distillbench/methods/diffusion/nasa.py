"""NASA — Negative-Away Steer Attention at inference (SNOOPI: Nguyen et al., "Supercharged One-step Text-to-Image
Diffusion Models with Negative Prompts", arXiv:2412.02687 v3, ICCV 2025; its NASA-I).

A negative prompt for a one-step student: in every cross-attention layer the attention to the negative prompt is
subtracted from the attention to the prompt,

    Z = softmax(Q K₊ᵀ/√d) V₊ − α · softmax(Q K₋ᵀ/√d) V₋                        (eq. 7–9)

(`kinds.diffusion.nasa`, which reads it from the paper's algorithm 1; no code is public). Nothing is trained:
the method takes no optimizer step, starts from another method's student (the recipe's `starts_from`, e.g.
DMD2's one-step generator) and saves it with its scale α in the pipeline's ``t2i.json`` (``nasa_scale``), so
every benchmark item that carries a negative prompt (pocket-negative's) is sampled steered away from it, and the
others as before. Its cost is one more attention per cross-attention layer, no extra UNet evaluation. α: the
paper's 0.1 for SD1.5-based students at inference (0.2 SD2.1, 0.5 PixArt-α; its figure 7 sweeps 0–1.5).
Image students only: the point models have no attention.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from annotated_types import Gt
from torch import nn

from distillbench.kinds.diffusion.images import PromptedUNet
from distillbench.methods.base import Method, register_method


@register_method("nasa", family="diffusion", paper="Nguyen et al. 2024, arXiv:2412.02687 (SNOOPI's NASA)",
                 summary="negative prompts for one-step image students through cross-attention (NASA-I); trains "
                         "nothing")
@dataclass
class NASA(Method):
    scale: Annotated[float, Gt(0)] = 0.1

    data_kind = "diffusion"
    normalize_by = "examples"

    def training_steps(self, budget) -> int:
        return 0  # sampling changes, weights do not

    def training_module(self, student: nn.Module) -> nn.Module:
        if not isinstance(student, PromptedUNet):
            raise ValueError("nasa steers cross-attention: it needs a text-to-image student, not a point model")
        student.pipeline.settings = {**student.pipeline.settings, "nasa_scale": self.scale}
        return student

    def teacher_forwards(self, batch: dict) -> int:
        return 0

    def loss(self, student, batch):
        raise RuntimeError("nasa trains no steps: it changes how the student samples")
