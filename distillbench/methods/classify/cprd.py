"""CPRD — Contrastive Partial Ranking Distillation (Chen et al., "How to Make Cross Encoder a Good Teacher
for Efficient Image-Text Retrieval?", CVPR 2024, arXiv:2407.07479).

A dual-encoder student (separate image and text embeddings, cosine scores s) learns from a
cross-encoder teacher (image and caption read jointly, scores t). The paper's findings: the teacher's
scores are distributed unlike the student's, so match its *ranking*, not its logits; and only the order
among *hard* negatives carries knowledge. For query i (an image; the text side is symmetric):

1. the student mines its K hardest in-batch negatives (highest s_i·, captions equal to the query's
   own are positives, not negatives);
2. the teacher orders them by t, highest first: c_i1, c_i2, …, c_iK; a candidate the teacher scores at
   least as high as the true match is *invalid* (a possible false negative or a teacher error) and
   is dropped;
3. the first J valid candidates are each contrasted against those ranked below them:

   L_CPRD = (1/2B) Σ_directions Σ_i Σ_{j ≤ J} −log[ exp(s_{i,c_ij}/τ) / Σ_{k ≥ j} exp(s_{i,c_ik}/τ) ]

   L = L_InfoNCE(s/τ) + λ · L_CPRD

a partial Plackett-Luce (ListMLE) likelihood of the teacher's order, trained next to the dual encoder's
own symmetric InfoNCE so the two objectives stay coordinated. Verified from the abstract: ranking (not
logit) distillation, hard negatives only, contrastive form added to the training loss. Two secondary
transcriptions of the paper's loss (not the paper itself) give −Σ_i Σ_{j<J_i*} log[exp(v_i·t_{c_ij}) /
Σ_{k=j}^{K} exp(v_i·t_{c_ik})] with J_i* "the first invalid hard negative": the same partial Plackett-Luce
form, stopped at the first invalid candidate. Under the validity rule above the invalid candidates are all
ranked above the valid ones (the teacher scores them highest), so here they are skipped instead, and J caps
the ranked part. Not verified (the method section could not be read here): the validity rule (a rule that
can end the list, such as a floor on the teacher's score, would match "the first invalid" more closely), K,
J, λ and τ. The defaults are this
implementation's choice for in-batch mining: K = 8, J = 4, λ = 1, τ = 0.07 (ALBEF's initial
temperature), each a field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Ge, Gt

from distillbench.core.tensors import upcast
from distillbench.methods.base import register_method
from distillbench.methods.classify.info_nce import RetrievalMethod, info_nce_loss


def partial_ranking_targets(student_scores: torch.Tensor, teacher_scores: torch.Tensor, positives: torch.Tensor,
                            hard_negatives: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row (query): (candidate columns [B, K] in the teacher's order, valid mask [B, K]).

    Candidates are the student's K highest-scoring negatives; they are sorted by the teacher's score,
    highest first; a candidate is valid when the teacher scores it below the query's true match."""
    with torch.no_grad():
        # Rows with fewer than K negatives fill their list with positives, marked invalid below.
        mined = upcast(student_scores).masked_fill(positives, float("-inf"))
        mined = mined.topk(min(hard_negatives, mined.shape[1]), dim=1).indices
        teacher = upcast(teacher_scores)
        order = teacher.gather(1, mined).argsort(dim=1, descending=True, stable=True)
        candidates = mined.gather(1, order)
        valid = (teacher.gather(1, candidates) < teacher.diagonal().unsqueeze(1)) & ~positives.gather(1, candidates)
    return candidates, valid


def partial_ranking_loss(student_scores: torch.Tensor, candidates: torch.Tensor, valid: torch.Tensor,
                         ranked: int, temperature: float) -> torch.Tensor:
    """Mean over rows of Σ_{j ≤ J} −log softmax over the valid candidates ranked j and below, at j."""
    logits = upcast(student_scores).gather(1, candidates) / temperature
    # Invalid candidates leave the list: they are neither anchors nor in any denominator. Valid ones keep the
    # teacher's order (stable sort puts them first).
    order = (~valid).to(torch.int8).argsort(dim=1, stable=True)
    logits = logits.gather(1, order).masked_fill(~valid.gather(1, order), float("-inf"))
    tail = torch.logcumsumexp(logits.flip(1), dim=1).flip(1)  # log Σ_{k ≥ j} exp(s_k / τ)
    steps = valid.gather(1, order) & (torch.arange(logits.shape[1], device=logits.device) < ranked)
    # A valid anchor with nothing valid below it has a one-term softmax (loss 0); keep the graph finite.
    per_step = torch.where(steps, tail - logits, torch.zeros_like(logits))
    return per_step.sum(1).mean()


def cprd_loss(student_scores: torch.Tensor, teacher_scores: torch.Tensor, positives: torch.Tensor,
              hard_negatives: int = 8, ranked: int = 4, temperature: float = 0.07) -> torch.Tensor:
    """L_CPRD, averaged over the image→text rows and the text→image columns of the [B, B] score matrices."""
    total = 0.0
    for student, teacher, same in ((student_scores, teacher_scores, positives),
                                   (student_scores.T, teacher_scores.T, positives.T)):
        candidates, valid = partial_ranking_targets(student, teacher, same, hard_negatives)
        total = total + partial_ranking_loss(student, candidates, valid, ranked, temperature)
    return total / 2


@register_method("cprd", family="classify", paper="Chen et al. 2024, arXiv:2407.07479",
                 summary="dual encoder: InfoNCE + contrastive partial ranking of its hard negatives in a "
                         "cross-encoder teacher's order")
@dataclass
class CPRD(RetrievalMethod):
    """InfoNCE plus the partial Plackett-Luce likelihood of the cross-encoder's order over mined hard negatives."""

    temperature: Annotated[float, Gt(0)] = 0.07
    hard_negatives: Annotated[int, Gt(0)] = 8  # K
    ranked: Annotated[int, Gt(0)] = 4  # J: valid candidates used as anchors
    distill_weight: Annotated[float, Ge(0)] = 1.0  # λ

    needs = ("teacher_scores",)

    @property
    def uses_teacher(self) -> bool:
        return True

    def loss(self, student, batch):
        scores = student.similarities(batch["images"], batch["captions"])
        return {"info_nce": info_nce_loss(scores, batch["positives"], self.temperature),
                "cprd": self.distill_weight * cprd_loss(scores, batch["teacher_scores"], batch["positives"],
                                                         self.hard_negatives, self.ranked, self.temperature)}
