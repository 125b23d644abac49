"""SimPO — Simple Preference Optimization with a reference-free reward (Meng et al., 2024, arXiv:2405.14734).

L = −log σ(β/|y_w|·log πθ(y_w|x) − β/|y_l|·log πθ(y_l|x) − γ)

γ is the absolute target margin (TRL's ``simpo_gamma``). Defaults β = 2.0, γ = 1.6: the
official repository's Mistral-7B-Base setting (the paper tunes both per model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F
from annotated_types import Ge, Gt

from distillbench.kinds.text_lm.logps import sequence_logps
from distillbench.methods.base import Method, register_method


def simpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, beta: float = 2.0,
               gamma: float = 1.6) -> torch.Tensor:
    """Mean over pairs; inputs are [B] per-token mean log-probs of the policy."""
    return -F.logsigmoid(beta * (policy_chosen - policy_rejected) - gamma).mean()


@register_method("simpo", family="llm", paper="Meng et al. 2024, arXiv:2405.14734",
                 summary="reference-free, length-normalised preference optimisation with a margin")
@dataclass
class SimPO(Method):
    """SimPO on chosen/rejected pairs (no reference model)."""

    supports_chunked_loss = True  # its log-probs come from sequence_logps

    beta: Annotated[float, Gt(0)] = 2.0
    gamma: Annotated[float, Ge(0)] = 1.6
    # β and the margin γ, which the authors name (with the learning rate) as the settings to tune; the grid is ours.
    search_space = {"beta": (2.0, 2.5), "gamma": (0.5, 1.0, 1.6)}

    data_kind = "preference"
    normalize_by = "examples"

    def loss(self, student, batch):
        chosen = sequence_logps(student, batch, "chosen", average=True)
        rejected = sequence_logps(student, batch, "rejected", average=True)
        return {"simpo": simpo_loss(chosen, rejected, self.beta, self.gamma)}
