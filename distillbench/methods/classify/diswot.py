"""DisWOT — Student Architecture Search for Distillation WithOut Training (Dong, Li & Wei, CVPR 2023,
arXiv:2303.15678).

DisWOT ranks candidate students for a teacher before any training. Teacher and candidate are both
re-initialised with Gaussian weights (conv/linear N(0, 1), BN weight 1 and bias 0, as the authors'
``network_weight_gaussian_init``), one batch of labelled images goes through both, and

    semantic similarity   M_s = ‖ρ(G_t G_tᵀ) − ρ(G_s G_sᵀ)‖²_F / C²
    relation similarity   M_r = ‖ρ(F_t F_tᵀ) − ρ(F_s F_sᵀ)‖²_F / B²
    score                 = −(M_s + M_r)                     (higher: a better student for this teacher)

with ρ the row-wise L2 normalisation, G [C, D] the gradient of the batch cross-entropy with respect to
the final linear layer's weight (one row per class: the Grad-CAM-like class direction the paper builds
its class-wise similarity matrix from), and F [B, ·] the last feature maps, flattened as they are (the
B × B Gram matrix does not depend on the maps' width or size, so nothing is resized). M_r is the
similarity-preserving (SP) loss of Tung & Mori (the authors' ``distiller_zoo/SP.py``). The authors' code
(lliai/DisWOT-CVPR2023@dffe4e6, ``compute_diswot_procedure``) compares the two gradient matrices with
its ICKD loss; here the class × class Gram matrices are compared directly, the paper's class-similarity
matrix.

The search itself (the paper runs an evolutionary search over the scores) is out of the loss: the
score is the pure function `diswot_score`, and the report ``distillbench report diswot``
(`distillbench.pocket.diswot_report`) checks its rank correlation with distilled accuracy over a small
candidate set. Once a student is chosen, the paper
distils it with vanilla KD, so the registered method trains with Hinton KD (its fields: the CIFAR KD
defaults) plus the search batch size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Gt
from torch import nn
from torch.nn import functional as F

from distillbench.core.tensors import upcast
from distillbench.methods.base import register_method
from distillbench.methods.classify.hinton_kd import HintonKD


def _normalised_gram(rows: torch.Tensor) -> torch.Tensor:
    """ρ(X Xᵀ): the Gram matrix of the rows of X [N, ·], each of its rows scaled to unit L2 norm."""
    flat = upcast(rows).flatten(1)
    return F.normalize(flat @ flat.T, dim=1)


def relation_distance(teacher_features: torch.Tensor, student_features: torch.Tensor) -> torch.Tensor:
    """M_r = ‖ρ(F_t F_tᵀ) − ρ(F_s F_sᵀ)‖²_F / B²: the SP distance between the batch's sample relations."""
    batch = teacher_features.shape[0]
    difference = _normalised_gram(teacher_features) - _normalised_gram(student_features)
    return difference.pow(2).sum() / batch**2


def semantic_distance(teacher_class_gradients: torch.Tensor, student_class_gradients: torch.Tensor) -> torch.Tensor:
    """M_s = ‖ρ(G_t G_tᵀ) − ρ(G_s G_sᵀ)‖²_F / C²: the distance between class × class similarity matrices."""
    classes = teacher_class_gradients.shape[0]
    difference = _normalised_gram(teacher_class_gradients) - _normalised_gram(student_class_gradients)
    return difference.pow(2).sum() / classes**2


def diswot_score(teacher_class_gradients: torch.Tensor, student_class_gradients: torch.Tensor,
                 teacher_features: torch.Tensor, student_features: torch.Tensor) -> torch.Tensor:
    """−(M_s + M_r); higher means the candidate's initial semantics and relations are closer to the teacher's."""
    return -(semantic_distance(teacher_class_gradients, student_class_gradients)
             + relation_distance(teacher_features, student_features))


# --- measuring a network at initialisation ------------------------------------------------------
def gaussian_initialise(network: nn.Module) -> nn.Module:
    """The authors' init: conv and linear weights N(0, 1) with zero biases; norm layers weight 1, bias 0."""
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)) and module.weight is not None:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
    return network


def feature_maps_and_class_gradients(classifier, images: torch.Tensor, labels: torch.Tensor
                                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(last feature maps [B, C', H, W], ∂CE/∂W of the final linear layer [classes, D]) of an
    `ImageClassifier` whose network has a ``trunk`` (the pocket CNNs); train-mode BN, as the code."""
    network = classifier.network
    network.train()
    network.zero_grad(set_to_none=True)
    captured: list[torch.Tensor] = []
    handle = network.trunk.register_forward_hook(lambda module, args, output: captured.append(output))
    try:
        F.cross_entropy(network(images), labels).backward()
    finally:
        handle.remove()
    return captured[-1].detach(), classifier.head.weight.grad.detach().clone()


def score_candidate(teacher, student, images: torch.Tensor, labels: torch.Tensor, seed: int) -> float:
    """DisWOT's score of `student` for `teacher`, both Gaussian-initialised from `seed` (copies are not
    needed: the networks are re-initialised in place, as the authors do)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gaussian_initialise(teacher.network)
        gaussian_initialise(student.network)
    teacher_maps, teacher_gradients = feature_maps_and_class_gradients(teacher, images, labels)
    student_maps, student_gradients = feature_maps_and_class_gradients(student, images, labels)
    return float(diswot_score(teacher_gradients, student_gradients, teacher_maps, student_maps))


@register_method("diswot", family="classify", paper="Dong et al. 2023, arXiv:2303.15678",
                 summary="training-free student search score −(class-similarity + sample-relation distance) at "
                         "Gaussian init; the chosen student is distilled with KD")
@dataclass
class DisWOT(HintonKD):
    """Hinton KD on the student DisWOT selects; the selection score is `diswot_score`."""

    search_batch_size: Annotated[int, Gt(0)] = 128  # one CIFAR-100 batch scores every candidate
