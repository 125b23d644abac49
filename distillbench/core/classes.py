"""Predicted classes from a classifier's logits, the same on every device: what top-1 scoring and anything that
counts a classifier's hits (a dataset-distillation expert's prior) agree on."""

from __future__ import annotations

import math

import torch


def top_classes(logits: torch.Tensor, k: int) -> list[list[int]]:
    """The k best class indices per row, best first; exact ties to the lower index (a stable sort: torch.topk
    orders ties differently by device and size) and NaN last."""
    ranked = torch.sort(logits.float().nan_to_num(nan=-math.inf), dim=1, descending=True, stable=True).indices
    return ranked[:, :k].tolist()
