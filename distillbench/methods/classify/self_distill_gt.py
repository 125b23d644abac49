"""Self-distillation with ground-truth guidance (Borup & Andersen, "Even your Teacher Needs Guidance:
Ground-Truth Targets Dampen Regularization Imposed by Self-Distillation", arXiv:2102.13088; NeurIPS 2021).

Iterative self-distillation: round 0 fits the labels; every later round trains the same architecture anew
on the targets α·y + (1 − α)·p_prev, with p_prev the previous round's predictions, under an ℓ2 penalty.
With the squared error of the authors' code (Kennethborup/self_distillation ``self_distiller.py``) the
per-round loss is

L = α · MSE(softmax(s), onehot(y)) + (1 − α) · MSE(softmax(s), softmax(s_prev)) + c · Σ_θ ‖θ‖₂

(equal, up to a constant, to MSE(softmax(s), α·y + (1 − α)·softmax(s_prev))); round 0 is the first term
alone. Defaults are that script's README command: α = 0.6, 5 steps (round 0 and four distillations),
c = 1e-4; each round starts from a fresh network (their ``LitResnet`` per step). Here the rounds are equal
shares of the recipe's steps (the harness's stages) and every round restarts from the student's own
initialisation (``restart_rounds``, the paper's procedure) or, with ``restart_rounds: false``, continues
from the previous round's weights. The optimizer and its learning-rate schedule run on across rounds, so
with a step decay a restarted last round trains at the decayed rate (see recipes/pocket/classify-seed-a.yaml).

In kernel ridge regression (A = K(K + λI)⁻¹) round t fits f_t = A(α·y + (1 − α)·f_{t−1}), so infinitely
many rounds solve the original problem with the ridge amplified to λ/α (the limit αK(αK + λI)⁻¹y of the
authors' toy notebook), and the fit is linear in α: with g₁ = A·y and g₀ = A·f_{t−1}, the α minimising
‖r − f_t‖² against reference values r is

α* = ⟨r − g₀, g₁ − g₀⟩ / ‖g₁ − g₀‖²

(`optimal_ground_truth_weight`). The reference that makes the question worth asking is the noise-free
function, against which the authors' notebook measures its loss: against the labels on the training points
(r = y, f_{t−1} from earlier rounds) every eigen-direction of K pulls α* to 1 or above, so training error
never favours distilling. The paper gives a closed form for the optimal weight at each step; its exact
statement (and which error it minimises) could not be read here (only the abstract), so this form is
derived from the setting above and checked against numeric minimisation in the tests.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Ge, Le
from torch import nn
from torch.nn import functional as F

from distillbench.core.tensors import upcast
from distillbench.methods.base import Staged, register_method
from distillbench.methods.classify.common import ClassifyMethod


# --- the kernel ridge setting ---------------------------------------------------------------------------
def ridge_smoother(kernel: torch.Tensor, ridge: float, cross_kernel: torch.Tensor | None = None) -> torch.Tensor:
    """A = K_x (K + λI)⁻¹: targets on the training points → the ridge fit at the points of `cross_kernel`
    (K_x, [M, N]; default the training points themselves)."""
    cross_kernel = kernel if cross_kernel is None else cross_kernel
    return torch.linalg.solve(kernel + ridge * torch.eye(len(kernel), dtype=kernel.dtype), cross_kernel.T).T


def self_distillation_fit(smoother: torch.Tensor, labels: torch.Tensor, previous_targets: torch.Tensor,
                          alpha: float) -> torch.Tensor:
    """One round: the ridge fit of α·y + (1 − α)·f_{t−1} (previous_targets: f_{t−1} on the training points)."""
    return smoother @ (alpha * labels + (1 - alpha) * previous_targets)


def optimal_ground_truth_weight(fit_on_labels: torch.Tensor, fit_on_previous: torch.Tensor,
                                reference: torch.Tensor) -> float:
    """α* = argmin_α ‖reference − (α·g₁ + (1 − α)·g₀)‖², g₁ the round's fit with α = 1, g₀ with α = 0."""
    direction = fit_on_labels - fit_on_previous
    return float(torch.dot((reference - fit_on_previous).flatten(), direction.flatten()) / direction.pow(2).sum())


# --- the deep setting -----------------------------------------------------------------------------------
def self_distillation_loss(logits: torch.Tensor, labels: torch.Tensor, previous_logits: torch.Tensor | None,
                           alpha: float) -> torch.Tensor:
    """α·MSE(softmax(s), onehot(y)) + (1 − α)·MSE(softmax(s), softmax(s_prev)); the label term alone in
    round 0 (previous_logits None). MSE is the mean over examples and classes, as ``F.mse_loss``."""
    probs = upcast(logits).softmax(1)
    label_term = F.mse_loss(probs, F.one_hot(labels, probs.shape[1]).to(probs.dtype))
    if previous_logits is None:
        return label_term
    return alpha * label_term + (1 - alpha) * F.mse_loss(probs, upcast(previous_logits).softmax(1))


def parameter_norm_penalty(parameters) -> torch.Tensor:
    """Σ_θ ‖θ‖₂ over the parameter tensors (the authors' ``reg_coef`` term; norms, not squared)."""
    return sum(parameter.norm() for parameter in parameters)


class SelfDistillationRounds(nn.Module):
    """The student, a frozen copy of the previous round's student and, when rounds restart, the student's
    initial weights; `round` (a buffer, so a resumed run knows it) counts the rounds started."""

    def __init__(self, student: nn.Module, restart: bool = True):
        super().__init__()
        self.student = student
        self.previous = copy.deepcopy(student).requires_grad_(False)
        self.initial = copy.deepcopy(student).requires_grad_(False) if restart else None
        self.register_buffer("round", torch.zeros((), dtype=torch.long))

    def train(self, mode: bool = True):
        super().train(mode)
        self.previous.eval()  # the teacher of a round predicts as a trained model does
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.student(images)

    @torch.no_grad()
    def start_round(self, number: int) -> None:
        """The student becomes the previous round's model and restarts from its initialisation (when kept)."""
        self.previous.load_state_dict(self.student.state_dict())
        if self.initial is not None:
            self.student.load_state_dict(self.initial.state_dict())
        self.round.fill_(number)


@register_method("self-distill-gt", family="classify", paper="Borup & Andersen 2021, arXiv:2102.13088",
                 summary="iterative self-distillation: each round refits α·labels + (1−α)·the previous round's "
                         "predictions (MSE on softmax, ℓ2 norm penalty)")
@dataclass
class SelfDistillGT(Staged, ClassifyMethod):
    """Rounds of self-distillation, each on targets mixing the labels (weight α) and the previous round."""

    alpha: Annotated[float, Ge(0), Le(1)] = 0.6
    distillation_steps: Annotated[int, Ge(1)] = 5  # rounds, the first on the labels alone
    norm_penalty: Annotated[float, Ge(0)] = 1e-4  # c (reg_coef)
    restart_rounds: bool = True  # each round from the initialisation, as the authors' fresh network per step

    supports_unlabeled = False  # every round's label term needs every example's label

    @property
    def stages(self) -> int:
        return self.distillation_steps

    def training_module(self, student):
        return SelfDistillationRounds(student, self.restart_rounds)

    def trained_model(self, module):
        return module.student

    def loss(self, student, batch):
        if batch["stage"] != int(student.round):
            student.start_round(batch["stage"])
        logits = student.student(batch["images"])
        previous = None
        if batch["stage"] > 0:
            with torch.no_grad():
                previous = student.previous(batch["images"])
        return {"self_distillation": self_distillation_loss(logits, batch["labels"], previous, self.alpha),
                "norm": self.norm_penalty * parameter_norm_penalty(student.student.parameters())}
