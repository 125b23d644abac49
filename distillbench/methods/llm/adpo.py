"""ADPO — Anchored Direct Preference Optimization, the listwise anchored loss.

"ADPO: Anchored Direct Preference Optimization", arXiv:2510.18913 (v6; code: wk222/TRL-ADPO).

For a prompt with K scored responses, with ℓ_i = log πθ(y_i|x) (summed over tokens, as in
the TRL port) and ℓ_i^anchor the anchor model's:

p_θ(i) = softmax_i((ℓ_i − ℓ_i^anchor) / τ),   q(i) = softmax_i(z_i / β_r),
L = −Σ_i q(i) · log p_θ(i)      (= KL(q ‖ p_θ) + a constant),

where z are the scores z-scored within the list as the TRL port does it (wk222/TRL-ADPO
``adpo_trainer.py``: z = (r − mean) / (std + 1e-4), the sample std of the list). Defaults are the
TRL port's: τ = 1.0, β_r = 0.5. Anchor modes: ``fixed`` (the student init, the paper's advice for offline
data and distillation), ``ema`` (the anchor follows the student, a ← α·a + (1−α)·θ after
every step, α = 0.99), ``kl_triggered`` (the anchor is replaced by a copy of the student
once the mean of |ℓ − ℓ^anchor| over the last ``kl_window`` steps exceeds ``kl_threshold``;
the window then starts again) and ``on_policy`` (the current policy, detached: the loss value
is log K and only its gradient (p − q)/τ moves the policy).

The ``kl_triggered`` rule follows wk222/TRL-ADPO@44f0f2a ``_update_anchor_policy`` (threshold
0.1, window 10, the sequence-level |log-ratio| as the KL estimate), with one difference: that
code appends to the window and checks it on every micro-batch, this one once per optimizer step
(the step's micro-batches averaged), so gradient accumulation does not change the trigger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

import torch
from annotated_types import Ge, Gt, Lt

from distillbench.core.recipe import KEY_MARKER, WHEN_SET
from distillbench.kinds.text_lm.logps import sequence_logps
from distillbench.methods.base import Method, ranked_count, register_method
from distillbench.methods.llm.hooks import MovesReference


def adpo_loss(policy_logps: torch.Tensor, anchor_logps: torch.Tensor, scores: torch.Tensor, tau: float = 1.0,
              beta_reward: float = 0.5) -> torch.Tensor:
    """Mean over lists of −Σ_i q(i)·log softmax((ℓ − ℓ^anchor)/τ)_i; all inputs [B, K]."""
    centred = scores - scores.mean(-1, keepdim=True)
    spread = scores.std(-1, keepdim=True) if scores.shape[-1] > 1 else torch.zeros_like(centred)
    target = torch.softmax(centred / (spread + 1e-4) / beta_reward, dim=-1)
    anchored = torch.log_softmax((policy_logps - anchor_logps) / tau, dim=-1)
    return -(target * anchored).sum(-1).mean()


@register_method("adpo", family="llm", paper="ADPO, arXiv:2510.18913",
                 summary="listwise anchored preference loss over K scored responses")
@dataclass
class ADPO(MovesReference, Method):
    """Listwise anchored preference optimisation on ranked, scored responses."""

    supports_chunked_loss = True  # its log-probs come from sequence_logps

    tau: Annotated[float, Gt(0)] = 1.0
    beta_reward: Annotated[float, Gt(0)] = 0.5
    anchor: Literal["fixed", "ema", "kl_triggered", "on_policy"] = "fixed"
    ema_alpha: Annotated[float, Ge(0), Lt(1)] = 0.99
    # Added after ADPO's first cells were keyed: keyed only when set away from the default, so they keep their keys.
    kl_threshold: Annotated[float, Gt(0)] = field(default=0.1, metadata={KEY_MARKER: WHEN_SET})
    kl_window: Annotated[int, Gt(0)] = field(default=10, metadata={KEY_MARKER: WHEN_SET})

    needs = ("reference_logps",)
    data_kind = "ranked"
    normalize_by = "examples"

    def __post_init__(self):
        self.load_state_dict({})

    @property
    def updates_reference(self):
        return self.anchor in ("ema", "kl_triggered")

    def loss(self, student, batch):
        ranks = ranked_count(batch)
        policy = torch.stack([sequence_logps(student, batch, f"rank{i}") for i in range(ranks)], dim=-1)
        if self.anchor == "on_policy":
            anchor = policy.detach()
        else:
            anchor = torch.stack([batch[f"reference_rank{i}_logps"] for i in range(ranks)], dim=-1)
            self._step_divergences.append(float((policy.detach() - anchor).abs().mean()))
        return {"adpo": adpo_loss(policy, anchor, batch["scores"], self.tau, self.beta_reward)}

    @torch.no_grad()
    def update_reference(self, reference, student, steps_done, total_steps):
        if self.anchor == "ema":
            for anchor, current in zip(reference.parameters(), student.parameters()):
                anchor.mul_(self.ema_alpha).add_(current.detach(), alpha=1 - self.ema_alpha)
            return
        if self._step_divergences:
            self._window = [*self._window, sum(self._step_divergences) / len(self._step_divergences)]
            self._window = self._window[-self.kl_window:]
        self._step_divergences = []
        if len(self._window) == self.kl_window and sum(self._window) / self.kl_window > self.kl_threshold:
            reference.load_state_dict(student.state_dict())
            self._window = []
            self._anchor_updates += 1

    def state_dict(self):
        if self.anchor != "kl_triggered":
            return {}
        return {"window": self._window, "anchor_updates": self._anchor_updates}

    def load_state_dict(self, state):
        self._window: list[float] = list(state.get("window", []))
        self._anchor_updates: int = state.get("anchor_updates", 0)
        self._step_divergences: list[float] = []
