"""The method contract.

A method is a registered dataclass: its fields are the paper's hyperparameters
with the paper's defaults. It declares the signals it needs, and `loss` returns
its named loss terms; the harness sums them, logs each one, and owns the loop.
The arithmetic lives in pure functions beside each method.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from distillbench.harness.registry import METHODS

# Signals the harness can provide in a batch, beside input_ids / attention_mask / labels.
SIGNALS = ("teacher_logits",)


def register_method(name: str, *, family: str, paper: str = "", summary: str = ""):
    """Register a method dataclass under `name` (see distillbench.harness.registry)."""
    return METHODS.register(name, family=family, paper=paper, summary=summary)


class Method:
    needs: ClassVar[tuple[str, ...]] = ()
    # What the loss averages over inside a batch, so accumulation can weight micro-batches:
    # "tokens" (token-level losses) or "examples" (sequence-level losses such as DPO).
    normalize_by: ClassVar[str] = "tokens"

    def loss(self, student: torch.nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def check(self) -> list[str]:
        """Constraints between fields that types cannot say; one 'field: problem' line each."""
        return []


def response_logits(model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    """Logits that predict each next token: position t scores token t+1."""
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]


def shifted_labels(batch: dict[str, Any]) -> torch.Tensor:
    """Labels aligned with `response_logits`; -100 marks prompt and padding."""
    return batch["labels"][:, 1:]
