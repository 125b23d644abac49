"""A causal LM's log-probs of a batch's response tokens: the next-token logits and the labels aligned
with them, and the summed (or mean) response log-probs of each sequence, which the reference signals
(batching.py, topk_cache.py), the reward benchmarks and the DPO family's losses all read."""

from __future__ import annotations

from typing import Any

import torch

from distillbench.core.tensors import upcast
from distillbench.kinds.text_lm.chunked import chunked_token_logps, lm_head_inputs


def response_logits(model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    """Logits that predict each next token: position t scores token t+1."""
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]


def shifted_labels(batch: dict[str, Any]) -> torch.Tensor:
    """Labels aligned with `response_logits`; -100 marks prompt and padding."""
    return batch["labels"][:, 1:]


def sequence_logps(model: torch.nn.Module, batch: dict[str, Any], side: str | None = None,
                   average: bool = False, with_counts: bool = False):
    """[B] summed (or, with `average`, per-token mean) log-probs of the response tokens;
    `side` selects 'chosen'/'rejected' of a preference batch. With `with_counts`, also the
    [B] number of response tokens (so one forward pass gives both the sum and the mean).
    With batch["chunk_size"], computed from the LM head's inputs in chunks (same values)."""
    prefix = f"{side}_" if side else ""
    labels = batch[f"{prefix}labels"][:, 1:]
    mask = labels != -100
    if batch.get("chunk_size"):
        hidden, weight, bias = lm_head_inputs(model, batch, side)
        picked = chunked_token_logps(hidden, weight, labels, bias, chunk_size=batch["chunk_size"])
    else:
        logits = model(input_ids=batch[f"{prefix}input_ids"], attention_mask=batch[f"{prefix}attention_mask"]).logits
        logps = torch.log_softmax(upcast(logits[:, :-1]), dim=-1)
        picked = torch.gather(logps, 2, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    total = (picked * mask).sum(-1)
    counts = mask.sum(-1).clamp(min=1)
    result = total / counts if average else total
    return (result, counts) if with_counts else result
