"""DPO — Direct Preference Optimization (Rafailov et al., 2023, arXiv:2305.18290).

L = −(1−ε)·log σ(β·h) − ε·log σ(−β·h),
h = [log πθ(y_w|x) − log π_ref(y_w|x)] − [log πθ(y_l|x) − log π_ref(y_l|x)]

with summed response log-probs; ε = 0 is the paper's loss, ε > 0 the conservative
(label-smoothed) variant of cDPO. β = 0.1 as in the paper's experiments and in TRL.
The reference is the policy's own initialisation unless the method says otherwise.

`rpo_alpha` = α adds the NLL of the chosen response, α · mean_pairs(−log πθ(y_w|x) / |y_w|),
the RPO objective of Pang et al., "Iterative Reasoning Preference Optimization",
arXiv:2404.19733 (α = 1 there; TRL's ``rpo_alpha``). Each chosen response is length-normalised
on its own, as the paper writes it; TRL instead takes one mean over every chosen token of the
batch, which weights long responses more. Plain DPO lowers the likelihood of
the chosen solution along with the rejected one when they share most tokens, which on
reasoning data costs accuracy; the NLL term keeps the chosen solution likely.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F
from annotated_types import Ge, Gt, Lt

from distillbench.kinds.text_lm.logps import sequence_logps
from distillbench.methods.base import Method, register_method


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, reference_chosen: torch.Tensor,
             reference_rejected: torch.Tensor, beta: float = 0.1, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean over pairs of the (label-smoothed) sigmoid DPO loss; inputs are [B] summed log-probs."""
    margin = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)
    losses = -(1 - label_smoothing) * F.logsigmoid(beta * margin) - label_smoothing * F.logsigmoid(-beta * margin)
    return losses.mean()


@register_method("dpo", family="llm", paper="Rafailov et al. 2023, arXiv:2305.18290",
                 summary="direct preference optimization (sigmoid, optional label smoothing)")
@dataclass
class DPO(Method):
    """Direct preference optimization on chosen/rejected pairs against a frozen reference."""

    supports_chunked_loss = True  # its log-probs come from sequence_logps

    beta: Annotated[float, Gt(0)] = 0.1
    label_smoothing: Annotated[float, Ge(0), Lt(0.5)] = 0.0
    rpo_alpha: Annotated[float, Ge(0)] | None = None
    # β: the paper trains with 0.1 (dialogue) and 0.5 (summarisation); 0.05 below them. The grid is ours.
    search_space = {"beta": (0.05, 0.1, 0.5)}

    needs = ("reference_logps",)
    data_kind = "preference"
    normalize_by = "examples"

    def loss(self, student, batch):
        chosen, chosen_tokens = sequence_logps(student, batch, "chosen", with_counts=True)
        rejected = sequence_logps(student, batch, "rejected")
        terms = {"dpo": dpo_loss(chosen, rejected, batch["reference_chosen_logps"], batch["reference_rejected_logps"],
                                 self.beta, self.label_smoothing)}
        if self.rpo_alpha:
            terms["nll"] = self.rpo_alpha * (-chosen / chosen_tokens).mean()
        return terms
