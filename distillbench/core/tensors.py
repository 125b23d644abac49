"""Tensor helpers every layer uses (kinds, methods and benchmarks alike)."""

from __future__ import annotations

import torch


def upcast(tensor: torch.Tensor) -> torch.Tensor:
    """Half-precision logits to fp32 before softmax (fp32 and fp64 stay as they are)."""
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor
