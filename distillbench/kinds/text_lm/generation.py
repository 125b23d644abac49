"""Batched generation with the KV cache and length-sorted batches (or, while `serving`, a vLLM engine)."""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

import torch

from distillbench.core.progress import progress

# The engine that generates for one model while its cell is scored (vllm_backend.VLLMGenerator), or None.
_SERVING: ContextVar = ContextVar("serving", default=None)


@contextmanager
def serving(generator):
    """Within the block, `generate_responses` on `generator.serves` goes to `generator` (other models do not)."""
    token = _SERVING.set(generator)
    try:
        yield generator
    finally:
        _SERVING.reset(token)


def chat_prompt_ids(tokenizer, conversation: list[dict[str, str]]) -> list[int]:
    """Token ids of a conversation rendered with the model's chat template, ready for the reply."""
    return list(tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True,
                                              return_dict=False))


@torch.no_grad()
def generate_responses(model, tokenizer, conversations: list[list[dict[str, str]]], *, max_new_tokens: int,
                       batch_size: int, temperature: float = 0.0, description: str = "generate") -> list[str]:
    """One decoded reply per conversation, in input order.

    Prompts are sorted by length so each batch wastes little padding; greedy when
    temperature is 0.
    """
    prompts = [chat_prompt_ids(tokenizer, c) for c in conversations]
    served = _SERVING.get()
    if served is not None and served.serves is model:
        with progress(total=len(prompts), description=f"{description} (vllm)") as bar:
            outputs = served.generate(prompts, tokenizer, max_new_tokens=max_new_tokens, temperature=temperature)
            bar.advance(len(prompts))
        return outputs
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    outputs: list[str] = [""] * len(prompts)
    model.eval()
    device = next(model.parameters()).device
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    with progress(total=len(prompts), description=description) as bar:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            # Left padding whatever the tokenizer says: a decoder-only model continues from the last token.
            batch = tokenizer.pad({"input_ids": [prompts[i] for i in chunk]}, padding=True, return_tensors="pt",
                                  padding_side="left")
            batch = {k: v.to(device) for k, v in batch.items()}
            generated = model.generate(**batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                       eos_token_id=tokenizer.eos_token_id, **sampling)
            replies = tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
            for index, reply in zip(chunk, replies):
                outputs[index] = reply.strip()
            bar.advance(len(chunk))
    return outputs
