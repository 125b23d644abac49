"""CV-DD — Dataset Distillation via Committee Voting (Cui et al., arXiv:2501.07575).

A committee of trained experts f_1..f_M, each with a prior weight w_i = softmax(prior_i / T_w) (T_w = 5;
the prior is the expert's accuracy in percent), distils N synthetic images per class. Every round
`voters` experts are drawn, and the synthetic images x̃ of a batch of classes y minimise

    L_recover = Σ_i w_i · [ CE(f_i(x̃), y) + r_bn · Σ_l m_l · (‖σ²_l(x̃) − σ²_l,BN‖₂ + ‖μ_l(x̃) − μ_l,BN‖₂) ]

over the expert's BatchNorm layers l (batch statistics of the layer's input against its running
statistics; m_1 = 10, the other m_l = 1), with Adam (betas 0.5/0.9), a cosine schedule, each iteration's
batch augmented (one random resized crop and horizontal flip for the whole batch, then a random roll of
up to 4 pixels: jitter) and clipping to the valid pixel range (recover/recover.py, utils_recover.py of
Jiacheng8/CV-DD@24097e9; w_i renormalised over the voters drawn). The defaults are the settings of the
authors' CIFAR-100 recovery scripts (recover/scripts/cifar100_experiments/recover_voter_ipc*.sh: lr 0.25,
4,000 iterations, r_bn 0.01, 2 voters, `--apply-data-augmentation`, patch initialisation), not recover.py's
argparse defaults (lr 0.1, 1,000 iterations, r_bn 0.05, no augmentation, Gaussian noise).

The student is then trained on the synthetic set alone, with soft labels from the committee's vote:
the sum of all the experts' logits on each (augmented) synthetic batch, weighted by v = softmax(prior / 10)
(relabel/relabel.py hard-codes that temperature; the committee scripts relabel_voter_*.sh pass all five
experts and their accuracies), computed with batch statistics (train-mode BN, the paper's BSSL), and a
temperature-scaled KL:

    L_student = τ² · KL(softmax(Σ_i v_i f_i(x̃) / τ) ‖ softmax(s(x̃) / τ))

τ = 4 is SRe2L's validation temperature and is not verified for CV-DD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from annotated_types import Ge, Gt
from torch.nn import functional as F

from distillbench.methods.base import register_method, upcast
from distillbench.methods.classify.common import ClassifyMethod, soft_kl_loss


def committee_weights(prior_accuracies: torch.Tensor, temperature: float = 5.0) -> torch.Tensor:
    """w = softmax(prior / T): experts with better priors (accuracy in percent) get more say."""
    return (upcast(prior_accuracies) / temperature).softmax(0)


def bn_statistics_loss(batch_means: list[torch.Tensor], batch_vars: list[torch.Tensor],
                       running_means: list[torch.Tensor], running_vars: list[torch.Tensor],
                       first_multiplier: float = 10.0) -> torch.Tensor:
    """Σ_l m_l (‖σ²_l − σ²_BN‖₂ + ‖μ_l − μ_BN‖₂), m_1 = `first_multiplier`, other m_l = 1."""
    total = 0.0
    for index, (mean, var, running_mean, running_var) in enumerate(zip(batch_means, batch_vars, running_means,
                                                                      running_vars)):
        weight = first_multiplier if index == 0 else 1.0
        total = total + weight * (torch.linalg.vector_norm(running_var - var)
                                  + torch.linalg.vector_norm(running_mean - mean))
    return total


def committee_recovery_loss(voter_logits: list[torch.Tensor], labels: torch.Tensor, voter_bn_losses: list[torch.Tensor],
                            weights: torch.Tensor, bn_weight: float = 0.05) -> torch.Tensor:
    """Σ_i w_i · (CE(f_i(x̃), y) + r_bn · BN_i): the synthetic images' objective for one batch of classes."""
    total = 0.0
    for weight, logits, bn_loss in zip(weights, voter_logits, voter_bn_losses):
        total = total + weight * (F.cross_entropy(upcast(logits), labels) + bn_weight * bn_loss)
    return total


def committee_logits(voter_logits: list[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    """The committee's vote: Σ_i w_i z_i over the experts' logits [B, C]."""
    return sum(weight * upcast(logits) for weight, logits in zip(weights, voter_logits))


@register_method("cv-dd", family="classify", paper="Cui et al. 2025, arXiv:2501.07575",
                 summary="dataset distillation: synthetic images recovered by a prior-weighted committee "
                         "(CE + BN statistics), student trained on them with the committee's soft labels")
@dataclass
class CVDD(ClassifyMethod):
    """Committee-voting dataset distillation; `loss` trains the student on the synthetic set."""

    images_per_class: Annotated[int, Gt(0)] = 10  # IPC
    voters: Annotated[int, Gt(0)] = 2  # experts drawn per round (the paper's N2 voter)
    iterations: Annotated[int, Gt(0)] = 4000  # recovery steps per batch of classes
    learning_rate: Annotated[float, Gt(0)] = 0.25
    jitter: Annotated[int, Ge(0)] = 4  # pixels (CIFAR)
    augment: bool = True  # a random resized crop and flip of each iteration's batch before the roll
    bn_weight: Annotated[float, Ge(0)] = 0.01  # r_bn
    first_bn_multiplier: Annotated[float, Ge(0)] = 10.0
    weight_temperature: Annotated[float, Gt(0)] = 5.0  # recovery: w = softmax(prior / 5) over the voters
    label_weight_temperature: Annotated[float, Gt(0)] = 10.0  # relabelling: v = softmax(prior / 10) over all
    temperature: Annotated[float, Gt(0)] = 4.0  # soft-label KL on the student (SRe2L's; unverified here)
    # The CIFAR-100 scripts start from patches of real images; "real" starts from random real images of the
    # class (whole images, not the code's patches), "gaussian" from noise (recover.py's argparse default).
    initialisation: Literal["gaussian", "real"] = "real"

    needs = ("teacher_logits",)  # the committee's vote on each synthetic batch (the committee is the teacher)
    supports_unlabeled = False

    def loss(self, student, batch):
        return {"committee_kl": soft_kl_loss(student(batch["images"]), batch["teacher_logits"], self.temperature)}
