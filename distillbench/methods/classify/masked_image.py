"""What the masked-image-modelling distillation methods (hybrid-distill, dmjd) share: the ViT student inside
the classifier wrapper, frozen teachers carried by the training module, and target whitening.

Their teachers are pocket teachers (`POCKET_NETWORKS`: ``shapes-feature-map``, ``shapes-vit-mae``), loaded by the method itself rather
than taken from the recipe's single ``teacher`` (Hybrid Distill needs two at once, and token-level outputs). The training module holds them frozen
(no gradients, always in eval mode, so the feature network's batch norm keeps its statistics).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from distillbench.core.errors import UserInputError
from distillbench.kinds.image_classifier.vit import PocketViT


def student_vit(student: nn.Module):
    """The `ViTMAEModel` of a ``shapes-vit-*`` student (an `ImageClassifier` around a `PocketViT`)."""
    network = getattr(student, "network", None)
    if not isinstance(network, PocketViT):
        raise UserInputError("masked-image-modelling methods train a ViT student: use student: arch:shapes-vit-tiny")
    return network.vit


class FrozenTeachers(nn.Module):
    """Teachers kept beside the student in the training module: frozen, and in eval mode whatever the
    train loop asks of the module around them."""

    def __init__(self, **teachers: nn.Module):
        super().__init__()
        for name, teacher in teachers.items():
            self.add_module(name, teacher.eval().requires_grad_(False))

    def train(self, mode: bool = True) -> "FrozenTeachers":
        return super().train(False)


class WithTeachers(nn.Module):
    """The student, the method's own trainable parts (`parts`) and the frozen teachers; the student is what
    `Method.trained_model` returns."""

    def __init__(self, student: nn.Module, parts: dict[str, nn.Module], teachers: FrozenTeachers):
        super().__init__()
        self.student = student
        self.parts = nn.ModuleDict(parts)
        self.teachers = teachers

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.student(images)


def whitened(features: torch.Tensor) -> torch.Tensor:
    """Per-token layer normalisation without affine parameters: teacher targets on one scale (as MAE's
    normalised pixels and feature-distillation targets)."""
    return F.layer_norm(features.float(), features.shape[-1:])
