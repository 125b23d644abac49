"""SPO — Self-supervised Preference Optimization (Li et al., "Self-supervised Preference Optimization:
Enhance Your Language Model with Preference Degree Awareness", EMNLP Findings 2024, arXiv:2409.17791).

L = L_align(x, y_w, y_l) + λ · L_degree,
L_degree = mean over y ∈ {y_w, y_l} of CE(g(h(x, ỹ_c)), c)

ỹ_c is the response with a fraction c/(K−1) of its key-content tokens removed, c drawn uniformly
from {0, …, K−1} for every response of the batch; h is the student's final hidden state averaged
over the response tokens of ỹ_c; g is a linear classifier trained with the student and dropped after
training. L_align is DPO (β, against the student's initialisation); the paper adds the degree loss to
several preference losses, DPO among them. The degree task makes the student tell how much of a response's key content is there,
the "preference degree" the paper adds to the binary chosen/rejected signal.

**Unverified.** Only the abstract and secondary summaries of the paper could be read here, and its
public repository (lijian16/SPO) holds only a LICENSE. What they say: key content is extracted (with
RAKE), removed to different degrees to make responses of graded preference, and a self-supervised
classification of the degree is added to the alignment loss. The rest is this implementation's
choice, not the paper's: the classifier on the mean-pooled last hidden state, K = 4 degrees, λ = 0.1,
removing a random subset of key tokens. Key content here is the tokens matching ``key_pattern``
(numerals by default): on math solutions the numbers are what RAKE's keywords would carry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F
from annotated_types import Ge, Gt
from torch import nn

from distillbench.kinds.text_lm.logps import sequence_logps
from distillbench.methods.base import Method, register_method
from distillbench.methods.llm.dpo import dpo_loss


def remove_key_tokens(input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                      key: torch.Tensor, fractions: torch.Tensor, scores: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded (input_ids, attention_mask, labels) with round(fraction · n) of each row's n key response
    tokens removed: those with the lowest `scores` (random numbers, so the removed subset is random).
    `key` is a [V] bool mask of key-content token ids; `fractions` is [B]; `scores` is [B, T]."""
    response = labels != -100
    is_key = key[input_ids] & response & attention_mask.bool()
    count = (is_key.sum(-1) * fractions).round().long()
    # rank of each key token among its row's key tokens by score (0 = lowest); others rank past every key
    masked = torch.where(is_key, scores, torch.full_like(scores, float("inf")))
    rank = masked.argsort(-1).argsort(-1)
    keep = attention_mask.bool() & ~(is_key & (rank < count[:, None]))
    # move the kept tokens to the front of each row, in order (a stable sort of "not kept" puts them first)
    order = (~keep).long().argsort(dim=-1, stable=True)
    length = keep.sum(-1)
    new_mask = torch.arange(input_ids.shape[1], device=input_ids.device)[None] < length[:, None]
    new_ids = torch.where(new_mask, input_ids.gather(1, order), torch.zeros_like(input_ids))
    new_labels = torch.where(new_mask, labels.gather(1, order), torch.full_like(labels, -100))
    width = max(int(length.max()), 1)
    return new_ids[:, :width], new_mask[:, :width].long(), new_labels[:, :width]


def right_pad(tensor: torch.Tensor, width: int, fill: int) -> torch.Tensor:
    """[B, T] padded on the right with `fill` to [B, width]."""
    return F.pad(tensor, (0, width - tensor.shape[1]), value=fill)


def response_mean(hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[B, H] mean of the hidden states at the response positions (labels != -100)."""
    mask = (labels != -100).unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


def degree_loss(degree_logits: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the removal-degree classifier; [N, K] logits, [N] degree classes."""
    return F.cross_entropy(degree_logits, degrees)


class DegreeClassifierStudent(nn.Module):
    """The student and the linear degree classifier on its final hidden state (dropped after training)."""

    def __init__(self, student: nn.Module, degrees: int):
        super().__init__()
        self.student = student
        self.classifier = nn.Linear(student.config.hidden_size, degrees)

    def forward(self, **inputs):
        return self.student(**inputs)


@register_method("spo", family="llm", paper="Li et al. 2024, arXiv:2409.17791",
                 summary="DPO plus a self-supervised loss classifying how much key content was removed (unverified)")
@dataclass
class SPO(Method):
    """A preference loss plus a classifier of how much key content was removed from each response."""

    supports_chunked_loss = True  # log-probs through sequence_logps; the degree task reads hidden states only

    beta: Annotated[float, Gt(0)] = 0.1  # DPO's β
    search_space = {"beta": (0.05, 0.1, 0.5)}  # DPO's β grid (methods/llm/dpo.py)
    degree_weight: Annotated[float, Ge(0)] = 0.1  # λ (unverified)
    degrees: Annotated[int, Ge(2)] = 4  # K removal degrees 0, 1/(K−1), …, 1 (unverified)
    key_pattern: str = r"[0-9]"

    needs = ("reference_logps",)
    data_kind = "preference"
    normalize_by = "examples"

    def __post_init__(self):
        self._key: torch.Tensor | None = None  # [V] bool: the key-content token ids (set by `prepare`)

    def check(self) -> list[str]:
        try:
            re.compile(self.key_pattern)
        except re.error as error:
            return [f"key_pattern: not a regular expression ({error})"]
        return []

    def prepare(self, run):
        self.find_key_tokens(run.batching.tokenizer)

    def find_key_tokens(self, tokenizer) -> None:
        """The token ids whose text matches `key_pattern`."""
        pattern = re.compile(self.key_pattern)
        vocabulary = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        self._key = torch.tensor([bool(token and pattern.search(token)) for token in vocabulary])

    def training_module(self, student):
        return DegreeClassifierStudent(student, self.degrees)

    def trained_model(self, module):
        return module.student

    def loss(self, module, batch):
        chosen = sequence_logps(module.student, batch, "chosen")
        rejected = sequence_logps(module.student, batch, "rejected")
        align = dpo_loss(chosen, rejected, batch["reference_chosen_logps"], batch["reference_rejected_logps"], self.beta)
        return {"dpo": align, "degree": self.degree_weight * self._degree_term(module, batch)}

    def _degree_term(self, module, batch) -> torch.Tensor:
        width = max(batch["chosen_input_ids"].shape[1], batch["rejected_input_ids"].shape[1])
        ids, mask, labels = (torch.cat([right_pad(batch[f"{side}_{name}"], width, fill) for side in ("chosen", "rejected")])
                             for name, fill in (("input_ids", 0), ("attention_mask", 0), ("labels", -100)))
        degrees = torch.randint(self.degrees, (ids.shape[0],)).to(ids.device)  # the run's RNG: checkpointed
        scores = torch.rand(ids.shape).to(ids.device)
        key = self._key.to(ids.device)
        ids, mask, labels = remove_key_tokens(ids, mask, labels, key, degrees / (self.degrees - 1), scores)
        hidden = module.student.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state
        return degree_loss(module.classifier(response_mean(hidden, labels)), degrees)
