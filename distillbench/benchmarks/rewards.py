"""Rewards of chosen and rejected responses: a DPO model's implicit reward, or a classifier reward model's score."""

from __future__ import annotations

import functools
from typing import Any

import torch

from distillbench.core.models import parse_model_ref, resolve_path
from distillbench.core.progress import progress
from distillbench.kinds.text_lm.data import _text, collate, tokenize_preferences
from distillbench.kinds.text_lm.logps import sequence_logps
from distillbench.kinds.text_lm.models import load_causal_lm


@functools.lru_cache(maxsize=2)
def _reference(reference: str):
    return load_causal_lm(reference)[0].eval()


def _response_logps(model, batch: dict[str, Any], side: str, average: bool = False) -> torch.Tensor:
    return sequence_logps(model, batch, side, average=average)


@torch.no_grad()
def implicit_rewards(model, tokenizer, reference: str | None, items: list[dict], *, batch_size: int,
                     max_length: int, ref_free_average: bool = True) -> list[dict[str, float]]:
    """{"chosen", "rejected"}: summed log π(y|x) − log π_ref(y|x) over the response tokens. Without a
    `reference`, log π(y|x) alone: its mean over the response tokens (`ref_free_average`, RewardBench's
    default ``--ref_free_type avg``) or its sum. The reference must share the model's tokenizer, as a DPO
    reference does."""
    model.eval()
    reference_model = _reference(reference) if reference else None
    examples = tokenize_preferences(tokenizer, items, max_length)
    rewards = []
    with progress(total=len(items), description="implicit rewards") as bar:
        for start in range(0, len(examples), batch_size):
            batch = collate(examples[start:start + batch_size], tokenizer.pad_token_id)
            sides = {}
            for side in ("chosen", "rejected"):
                sides[side] = _response_logps(model, batch, side, average=reference_model is None and ref_free_average)
                if reference_model is not None:
                    sides[side] = sides[side] - _response_logps(reference_model, batch, side)
            rewards += [{"chosen": float(c), "rejected": float(r)} for c, r in zip(sides["chosen"], sides["rejected"])]
            bar.advance(len(batch["chosen_input_ids"]))
    return rewards


@functools.lru_cache(maxsize=1)
def _classifier(reward_model: str):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_path(parse_model_ref(reward_model))
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, use_safetensors=True).eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _render(tokenizer, prompt: Any, response: str) -> str:
    """The conversation as the reward model reads it: its chat template when it has one (as RewardBench)."""
    messages = list(prompt) if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    messages.append({"role": "assistant", "content": response})
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(messages, tokenize=False)
    return "\n\n".join(m["content"] for m in messages)


@torch.no_grad()
def classifier_rewards(reward_model: str, items: list[dict], *, batch_size: int,
                       max_length: int) -> list[dict[str, float]]:
    """{"chosen", "rejected"}: the reward model's first logit for each response."""
    model, tokenizer = _classifier(reward_model)
    texts = [_render(tokenizer, item["prompt"], _text(item[side])) for item in items for side in ("chosen", "rejected")]
    scores: list[float] = []
    with progress(total=len(texts), description="reward model") as bar:
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt", add_special_tokens=not tokenizer.chat_template)
            scores += model(**batch).logits[:, 0].float().tolist()
            bar.advance(len(batch["input_ids"]))
    return [{"chosen": scores[2 * i], "rejected": scores[2 * i + 1]} for i in range(len(items))]
