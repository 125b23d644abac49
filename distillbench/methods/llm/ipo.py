"""IPO — Identity Preference Optimisation (Azar et al., 2023, "A General Theoretical Paradigm to
Understand Learning from Human Preferences", arXiv:2310.12036).

L = (h − 1/(2β))²,   h = [ℓθ(y_w) − ℓ_ref(y_w)] − [ℓθ(y_l) − ℓ_ref(y_l)]

Pinned choice: ℓ is the per-token mean log-prob of the response (as TRL, whose comment
says this was confirmed with the IPO authors, and LLaMA-Factory); OpenRLHF uses summed
log-probs, which makes the target margin 1/(2β) length-dependent. β = 0.1 (TRL's default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Gt

from distillbench.kinds.text_lm.logps import sequence_logps
from distillbench.methods.base import Method, register_method


def ipo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, reference_chosen: torch.Tensor,
             reference_rejected: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """Mean over pairs of (h − 1/(2β))²; inputs are [B] per-token mean log-probs."""
    margin = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)
    return ((margin - 1 / (2 * beta)) ** 2).mean()


@register_method("ipo", family="llm", paper="Azar et al. 2023, arXiv:2310.12036",
                 summary="identity preference optimisation (length-normalised log-probs)")
@dataclass
class IPO(Method):
    """IPO on chosen/rejected pairs against the frozen initial policy."""

    supports_chunked_loss = True  # its log-probs come from sequence_logps

    beta: Annotated[float, Gt(0)] = 0.1
    # τ (here beta), the regularisation strength, around TRL's default 0.1; the grid is ours.
    search_space = {"beta": (0.01, 0.1, 0.5)}

    needs = ("reference_logps",)
    data_kind = "preference"
    normalize_by = "examples"

    def loss(self, student, batch):
        chosen = sequence_logps(student, batch, "chosen", average=True)
        rejected = sequence_logps(student, batch, "rejected", average=True)
        return {"ipo": ipo_loss(chosen, rejected, batch["reference_chosen_mean_logps"],
                                batch["reference_rejected_mean_logps"], self.beta)}
