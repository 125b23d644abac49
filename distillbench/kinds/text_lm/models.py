"""Causal language models: loaded through transformers' own `from_pretrained` from any model reference
(weights from safetensors only; `trust_remote_code` stays off unless asked for), and the shared-vocabulary
check logit distillation needs."""

from __future__ import annotations

import torch

from distillbench.core.errors import UserInputError
from distillbench.core.models import load_pretrained, pad_on_the_left, parse_model_ref, resolve_path


def load_causal_lm(text: str, *, trust_remote_code: bool = False, dtype: torch.dtype = torch.float32):
    """Load (model, tokenizer) for a model reference, ready for training or generation."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tokenizer = load_pretrained(text, AutoModelForCausalLM, AutoTokenizer, "model",
                                       trust_remote_code=trust_remote_code, dtype=dtype)
    pad_on_the_left(tokenizer)
    return model, tokenizer


def check_shared_vocabulary(teacher: str, student: str) -> None:
    """Logit distillation compares distributions token by token: the vocabularies must be the same
    (trl #2215, #4562: a silent mismatch gives wrong results instead of an error)."""
    from transformers import AutoTokenizer

    vocabularies = []
    for text in (teacher, student):
        ref = parse_model_ref(text)
        tokenizer = AutoTokenizer.from_pretrained(resolve_path(ref), revision=ref.revision)
        vocabularies.append(tokenizer.get_vocab())
    if vocabularies[0] != vocabularies[1]:
        raise UserInputError(f"teacher: {teacher} and student {student} have different vocabularies "
                             f"({len(vocabularies[0])} vs {len(vocabularies[1])} tokens); logit distillation "
                             "needs a shared tokenizer")
