"""SFT — supervised fine-tuning on the reference responses (maximum likelihood).

L = −(1/N) Σ_t log πθ(y_t | x, y_<t), averaged over the N response tokens of the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from distillbench.methods.base import Method, register_method
from distillbench.methods.llm.chunked import StudentOutputs, sft_loss  # noqa: F401  (dckd and adpa import SFT's loss from here)


@register_method("sft", family="llm", paper="supervised fine-tuning (baseline)",
                 summary="maximum likelihood on the reference responses")
@dataclass
class SFT(Method):
    """Supervised fine-tuning on the training responses."""

    supports_chunked_loss = True

    def loss(self, student, batch):
        return {"nll": StudentOutputs(student, batch).nll()}
