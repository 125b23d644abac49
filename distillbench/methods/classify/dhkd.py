"""DHKD — Dual-Head Knowledge Distillation (Yang, Zong, Huang, Feng & An, "Dual-Head Knowledge
Distillation: Enhancing Logits Utilization with an Auxiliary Head", arXiv:2411.08937; KDD 2025).

A logit-level loss (BinaryKL) and CE on one linear classifier conflict and collapse it; DHKD gives
the logit-level loss its own auxiliary head on the shared features, so both losses shape the
backbone while only CE trains the classifier used at inference:

d  = clamp(σ((a − t) / τ), ε, 1 − ε)                 a: auxiliary-head logits, t: teacher logits
L  = γ · CE(s, y) + α · τ² · (1/B) Σ_i Σ_c KL(Bernoulli(½) ‖ Bernoulli(d_ic))

(``BinaryKLNorm`` of the authors' repository, penghui-yang/DHKD@7976c69, ε = 1e-8). With
gradient alignment (their ``--ga``, after PCGrad), the BinaryKL gradient, over all trained
parameters, loses its component along the CE gradient whenever the two point against each
other (g_kd ← g_kd − (g_kd·g_ce)/‖g_ce‖² · g_ce if g_kd·g_ce < 0). Defaults are their CIFAR-100
command (``-r 1 -a 1 --BinaryKL_T 2 --nonlinear --ga``); ImageNet used α = 0.1 and a linear head.
The nonlinear head is Linear(d, 200)-Dropout(0.1)-BatchNorm-ReLU-Linear(200, C). Only the
student's own head is kept after training.

Here the alignment is applied per micro-batch (the authors' batch is one micro-batch), and weight
decay is left to the optimizer, as theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from annotated_types import Ge, Gt
from torch import nn

from distillbench.core.tensors import upcast
from distillbench.methods.base import register_method
from distillbench.methods.classify.common import ClassifyMethod, cross_entropy_loss

AUXILIARY_HIDDEN, AUXILIARY_DROPOUT = 200, 0.1  # models/classifier.py NonLinearClassifier
CLAMP = 1e-8


def binary_kl_norm_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                        temperature: float = 2.0) -> torch.Tensor:
    """τ² · (1/B) Σ_{i,c} KL(Bernoulli(½) ‖ Bernoulli(σ((s − t)/τ))), the sigmoid clamped to [ε, 1 − ε]."""
    difference = torch.sigmoid((upcast(student_logits) - upcast(teacher_logits)) / temperature)
    difference = difference.clamp(min=CLAMP, max=1 - CLAMP)
    half = torch.log(torch.tensor(0.5, dtype=difference.dtype, device=difference.device))
    per_logit = 0.5 * (half - difference.log()) + 0.5 * (half - (1 - difference).log())
    return temperature**2 * per_logit.sum() / len(student_logits)


def project_conflicting(gradient: torch.Tensor, primary: torch.Tensor) -> torch.Tensor:
    """`gradient` without its component along `primary` when the two conflict (negative dot product)."""
    dot = torch.dot(gradient, primary)
    if dot < 0:
        return gradient - dot * primary / primary.norm() ** 2
    return gradient


def gradient_aligned(terms: dict[str, torch.Tensor], parameters: list[torch.Tensor],
                     primary: str) -> dict[str, torch.Tensor]:
    """The same loss values, with gradients that conflict with `primary`'s projected off it.

    Each returned term is value + (⟨θ, g⟩ − ⟨θ, g⟩.detach()): it reads as the original loss, and
    its gradient with respect to the parameters θ is the (projected) gradient g, so the harness's
    single backward pass applies the aligned update.
    """
    flat = {}
    for name, value in terms.items():
        grads = torch.autograd.grad(value, parameters, retain_graph=True, allow_unused=True)
        flat[name] = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                                for g, p in zip(grads, parameters)])
    aligned = {}
    for name, value in terms.items():
        gradient = flat[name] if name == primary else project_conflicting(flat[name], flat[primary])
        pieces = torch.split(gradient.detach(), [p.numel() for p in parameters])
        surrogate = sum((p * g.view_as(p)).sum() for p, g in zip(parameters, pieces))
        aligned[name] = value.detach() + surrogate - surrogate.detach()
    return aligned


class DualHeadStudent(nn.Module):
    """The student and an auxiliary head on its penultimate features (trained together, the auxiliary
    head dropped after training)."""

    def __init__(self, student: nn.Module, auxiliary: nn.Module):
        super().__init__()
        self.student = student
        self.auxiliary = auxiliary

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.student(images)


def auxiliary_head(kind: str, features: int, classes: int) -> nn.Module:
    if kind == "linear":
        return nn.Linear(features, classes)
    return nn.Sequential(nn.Linear(features, AUXILIARY_HIDDEN), nn.Dropout(AUXILIARY_DROPOUT),
                         nn.BatchNorm1d(AUXILIARY_HIDDEN), nn.ReLU(), nn.Linear(AUXILIARY_HIDDEN, classes))


@register_method("dhkd", family="classify", paper="Yang et al. 2024, arXiv:2411.08937",
                 summary="CE on the student's head + BinaryKL to the teacher's logits on an auxiliary head, "
                         "gradients aligned")
@dataclass
class DHKD(ClassifyMethod):
    """CE on the student's classifier, logit-level BinaryKL on an auxiliary head sharing its features."""

    gamma: Annotated[float, Ge(0)] = 1.0  # CE weight (-r)
    alpha: Annotated[float, Ge(0)] = 1.0  # BinaryKL weight (-a)
    temperature: Annotated[float, Gt(0)] = 2.0  # --BinaryKL_T
    auxiliary: Literal["nonlinear", "linear"] = "nonlinear"
    gradient_alignment: bool = True  # --ga

    needs = ("teacher_logits",)

    def training_module(self, student):
        return DualHeadStudent(student, auxiliary_head(self.auxiliary, student.feature_dim, student.num_classes))

    def trained_model(self, module):
        return module.student

    def loss(self, student, batch):
        logits, features = student.student.forward_features(batch["images"])
        terms = {"ce": self.gamma * cross_entropy_loss(logits, batch["labels"]),
                 "binary_kl": self.alpha * binary_kl_norm_loss(student.auxiliary(features), batch["teacher_logits"],
                                                               self.temperature)}
        if not self.gradient_alignment:
            return terms
        return gradient_aligned(terms, [p for p in student.parameters() if p.requires_grad], primary="ce")
