"""DistillWeighted — weighted multi-source distillation (Borup, Phoo & Hariharan, "Distilling from Similar Tasks
for Transfer Learning on a Budget", arXiv:2304.12314; ICCV 2023).

DistillNearest's loss (`distill_nearest.py`) with every source kept, weighted by its relevance to the
target task: w = softmax(similarity / τ_w) over the sources' task similarities (the leave-one-out k-NN
accuracy of the target labels under each source's features), so the target's pseudo-labels are the
weighted mixture Σ_s w_s·p_s and each source's features are regressed with weight w_s. The softmax form and
τ_w are this implementation's choice (the paper's exact weighting could not be read here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Gt

from distillbench.methods.base import register_method
from distillbench.methods.classify.distill_nearest import DistillNearest


@register_method("distill-weighted", family="classify", paper="Borup et al. 2023, arXiv:2304.12314",
                 summary="distil every source model at once, weighted by a softmax of its task similarity")
@dataclass
class DistillWeighted(DistillNearest):
    """KD and feature regression from all source teachers, weighted by their similarity to the target task."""

    weight_temperature: Annotated[float, Gt(0)] = 0.05  # τ_w, on similarities that are accuracies in [0, 1]

    def source_weights(self, similarities: torch.Tensor) -> torch.Tensor:
        return (similarities / self.weight_temperature).softmax(0).float()
