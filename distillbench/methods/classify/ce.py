"""CE — the student trained on the labels alone: the "student" column of every KD table.

L = −(1/B) Σ_i log softmax(s_i)[y_i]
"""

from __future__ import annotations

from dataclasses import dataclass

from distillbench.methods.base import register_method
from distillbench.methods.classify.common import ClassifyMethod, cross_entropy_loss


@register_method("ce", family="classify", paper="baseline (no teacher)",
                 summary="cross-entropy on the labels: the student trained alone")
@dataclass
class CE(ClassifyMethod):
    """Cross-entropy on the labels, no teacher."""

    def loss(self, student, batch):
        return {"ce": cross_entropy_loss(student(batch["images"]), batch["labels"])}
