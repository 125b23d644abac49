"""Curry-DPO — DPO over a curriculum of pairs from ranked responses, with an iterative reference.

Pattnaik, Maheshwary, Ogueji, Yadav & Madhusudhan, "Enhancing Alignment using Curriculum
Learning & Ranked Preferences" (Curry-DPO), Findings of EMNLP 2024, arXiv:2403.07230.

Each prompt has K ranked responses R1 > R2 > ... > RK. Iteration i (i = 1 ... K−1) trains
DPO on the pairs (R1, R_{K+1−i}): the largest score gap, the easiest pair, first. Each
iteration's reference is the model at the end of the previous iteration (the first
iteration's is the student init):

L_i = −log σ(β · [(log πθ(R1) − log π_{i−1}(R1)) − (log πθ(R_{K+1−i}) − log π_{i−1}(R_{K+1−i}))])

Pairs whose scores tie carry no preference and are left out. The budget's steps are split
equally between the iterations. The paper's K = 4 gives 3 iterations; β = 0.1 is TRL's
DPO default (the paper's β is not stated in the text we could read).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Gt

from distillbench.core.errors import UserInputError

from distillbench.kinds.text_lm.logps import sequence_logps
from distillbench.methods.base import Method, Staged, ranked_count, register_method
from distillbench.methods.llm.dpo import dpo_loss
from distillbench.methods.llm.hooks import MovesReference


def curry_dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, reference_chosen: torch.Tensor,
                   reference_rejected: torch.Tensor, valid: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """DPO loss averaged over the pairs marked `valid` (0 with zero gradient when there are none)."""
    if not valid.any():
        return policy_chosen.sum() * 0
    return dpo_loss(policy_chosen[valid], policy_rejected[valid], reference_chosen[valid],
                    reference_rejected[valid], beta)


@register_method("curry-dpo", family="llm", paper="Pattnaik et al. 2024, arXiv:2403.07230",
                 summary="DPO on ranked pairs ordered easy to hard, each iteration against the previous model")
@dataclass
class CurryDPO(Staged, MovesReference, Method):
    """Curriculum DPO: (R1, RK), then (R1, RK−1), ... with the reference renewed each iteration."""

    supports_chunked_loss = True  # its log-probs come from sequence_logps

    beta: Annotated[float, Gt(0)] = 0.1
    search_space = {"beta": (0.05, 0.1, 0.5)}  # DPO's β grid (methods/llm/dpo.py)
    iterations: Annotated[int, Gt(0)] = 3

    needs = ("reference_logps",)
    data_kind = "ranked"
    normalize_by = "examples"

    @property
    def stages(self):
        return self.iterations

    def loss(self, student, batch):
        ranks = ranked_count(batch)
        if ranks - 1 != self.iterations:
            raise UserInputError(f"curry-dpo: {ranks} ranked responses give {ranks - 1} iterations, "
                                 f"not iterations={self.iterations}")
        rejected = f"rank{ranks - 1 - batch['stage']}"
        valid = batch["scores"][:, 0] > batch["scores"][:, ranks - 1 - batch["stage"]]
        return {"dpo": curry_dpo_loss(sequence_logps(student, batch, "rank0"), sequence_logps(student, batch, rejected),
                                      batch["reference_rank0_logps"], batch[f"reference_{rejected}_logps"], valid,
                                      self.beta)}

    def update_reference(self, reference, student, steps_done, total_steps):
        starts_stage = steps_done < total_steps and (steps_done * self.iterations // total_steps
                                                     != (steps_done - 1) * self.iterations // total_steps)
        if starts_stage:  # the next iteration measures against the model this one ended with
            reference.load_state_dict(student.state_dict())
