"""Hybrid Distill (Shi, Zhang, Wang, Li, Dai, Zou, Xiong & Tian, "Hybrid Distillation: Connecting Masked
Autoencoders with Contrastive Learners", arXiv:2306.15876).

A ViT student learns from two frozen teachers at once: the feature maps of a supervised/contrastive teacher
T_c (discrimination) and the token relations, i.e. attention maps, of a masked-image-modelling teacher T_m
(diverse, local attention). Redundant tokens are dropped from the student's input (mask M), more of them as
training progresses:

L = α · SmoothL1(h(S_L(x ⊙ M)), LN(T_c(x)) ⊙ M) + β · (1/|𝓛|) Σ_{l∈𝓛} KL(A^l_{T_m}(x ⊙ M) ‖ A^l_S(x ⊙ M))

with h a linear projection of the student's last-layer patch tokens, LN a parameter-free layer norm, A^l the
softmax attention maps of layer l (every head, every query row over the kept tokens and [CLS]), means over
tokens, heads and rows. From the abstract: "imitates the token relations of the MIM teacher to alleviate
attention collapse, as well as distills the feature maps of the supervised/CL teacher", with "a progressive
redundant token masking strategy"; its camera-ready abstract (OpenReview, ICLR 2024) places the relations "at
intermediate layers" and the CL teacher's "final features" at the output, and a reviewer quotes "The
hyperparameter α and β are set to 1.0". Not verified against the full text (it could not be read here): the
distances (smooth L1, KL), which layers count as intermediate (here every layer but the last, student layer l
against teacher layer l; ``relation_layers: all`` adds the last), and the redundancy score, taken here as the
MIM teacher's last-layer [CLS] attention on the whole image (head mean), the lowest-scored tokens dropped, the
dropped share rising linearly over `stages` equal stages from 0 to `final_drop_ratio`.

Pocket teachers (`distillbench.pocket.shapes_vit`): T_c is the supervised pocket feature network (its 8×8 map
pooled to the 4×4 patch grid), T_m the pocket MAE. The student's saved model is the ViT alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

import torch
from annotated_types import Ge, Gt, Lt
from torch import nn
from torch.nn import functional as F

from distillbench.core.registry import POCKET_NETWORKS
from distillbench.kinds.image_classifier.vit import encode
from distillbench.methods.base import Staged, register_method
from distillbench.methods.classify.common import ClassifyMethod
from distillbench.methods.classify.masked_image import FrozenTeachers, WithTeachers, student_vit, whitened


def attention_kl(teacher_attention: torch.Tensor, student_attention: torch.Tensor) -> torch.Tensor:
    """Mean over batch, heads and query rows of KL(teacher row ‖ student row); maps [B, H, Q, Q]."""
    teacher, student = teacher_attention.float(), student_attention.float()
    tiny = torch.finfo(teacher.dtype).tiny
    return (teacher * (teacher.clamp_min(tiny).log() - student.clamp_min(tiny).log())).sum(-1).mean()


def hybrid_distill_loss(student_features: torch.Tensor, teacher_features: torch.Tensor,
                        student_attentions: list[torch.Tensor], teacher_attentions: list[torch.Tensor],
                        alpha: float = 1.0, beta: float = 1.0, smooth_l1_beta: float = 1.0
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """(α · feature term, β · relation term). Features [B, K, D] on the kept tokens (the student's already
    projected, the teacher's already normalised); attention maps: one [B, H, Q, Q] per distilled layer pair."""
    feature = F.smooth_l1_loss(student_features.float(), teacher_features.float(), beta=smooth_l1_beta)
    if len(student_attentions) != len(teacher_attentions):
        raise ValueError(f"{len(student_attentions)} student attention maps, {len(teacher_attentions)} teacher ones")
    relation = torch.stack([attention_kl(t, s) for t, s in zip(teacher_attentions, student_attentions)]).mean()
    return alpha * feature, beta * relation


def redundancy_keep(cls_attention: torch.Tensor, drop_ratio: float) -> torch.Tensor:
    """[B, K] indices of the patches kept, in order: all but the `drop_ratio` share with the least
    [CLS] attention (cls_attention [B, patches])."""
    patches = cls_attention.shape[1]
    keep = patches - int(drop_ratio * patches)
    return cls_attention.topk(keep, dim=1).indices.sort(dim=1).values


@register_method("hybrid-distill", family="classify", paper="Shi et al. 2023, arXiv:2306.15876",
                 summary="ViT student: feature maps of a supervised/CL teacher + attention maps of an MAE teacher, "
                         "on progressively fewer (non-redundant) tokens")
@dataclass
class HybridDistill(Staged, ClassifyMethod):
    """Feature distillation from the discriminative teacher and relation (attention-map) distillation from
    the MIM teacher, on the student's non-redundant tokens."""

    alpha: Annotated[float, Ge(0)] = 1.0  # feature term (supervised/CL teacher)
    beta: Annotated[float, Ge(0)] = 1.0  # relation term (MIM teacher)
    final_drop_ratio: Annotated[float, Ge(0), Lt(1)] = 0.5  # share of redundant tokens dropped in the last stage
    smooth_l1_beta: Annotated[float, Gt(0)] = 1.0
    relation_layers: Literal["intermediate", "all"] = "intermediate"  # attention maps matched: all but the last layer

    stages: ClassVar[int] = 4  # the drop ratio steps up at each stage: 0, 1/3, 2/3, 1 × final_drop_ratio

    def training_module(self, student):
        vit = student_vit(student)
        feature_teacher = POCKET_NETWORKS.get("shapes-feature-map")()
        projector = nn.Linear(vit.config.hidden_size, feature_teacher.dim)
        return WithTeachers(student, {"projector": projector},
                            FrozenTeachers(features=feature_teacher, relations=POCKET_NETWORKS.get("shapes-vit-mae")()))

    def trained_model(self, module):
        return module.student

    def drop_ratio(self, stage: int) -> float:
        return self.final_drop_ratio * stage / max(self.stages - 1, 1)

    def loss(self, student, batch):
        images = batch["images"]
        teachers = student.teachers
        with torch.no_grad():
            targets = whitened(teachers.features(images))
            _, full_maps = encode(teachers.relations, images, attentions=True)
            keep = redundancy_keep(full_maps[-1][:, :, 0, 1:].mean(1), self.drop_ratio(batch.get("stage", 0)))
            dropped = keep.shape[1] < full_maps[-1].shape[-1] - 1
            teacher_maps = encode(teachers.relations, images, keep, attentions=True)[1] if dropped else full_maps
        tokens, student_maps = encode(student_vit(student.student), images, keep, attentions=True)
        if self.relation_layers == "intermediate":  # the last layer is the feature teacher's
            student_maps, teacher_maps = student_maps[:-1], teacher_maps[:-1]
        kept_targets = targets.gather(1, keep.unsqueeze(-1).expand(-1, -1, targets.shape[-1]))
        feature, relation = hybrid_distill_loss(student.parts["projector"](tokens[:, 1:]), kept_targets,
                                                student_maps, teacher_maps, self.alpha, self.beta,
                                                self.smooth_l1_beta)
        return {"feature": feature, "relation": relation}
