"""On-policy batches: the student's own samples in place of the dataset responses.

Methods such as GKD (with probability λ per step) or DistiLLM train on responses the
student samples itself; the teacher then scores those. Preference methods that learn on
student samples (ADPA) keep their pairs and get the samples beside them. Whether a step is on-policy is a
pure function of (seed, step), so a resumed run makes the same choices.
"""

from __future__ import annotations

import torch

from .data import collate


def is_on_policy_step(probability: float, seed: int, step: int) -> bool:
    if probability <= 0:
        return False
    generator = torch.Generator().manual_seed(seed * 7_919 + step)
    return torch.rand((), generator=generator).item() < probability


def prompt_ids(batch: dict, prefix: str = "") -> list[list[int]]:
    """Each row's tokens before its first response token (of the sequence `prefix` names)."""
    prompts = []
    for ids, labels, mask in zip(batch[f"{prefix}input_ids"], batch[f"{prefix}labels"],
                                 batch[f"{prefix}attention_mask"]):
        response = (labels != -100).nonzero()
        end = int(response[0]) if len(response) else int(mask.sum())
        prompts.append(ids[:end].tolist())
    return prompts


def with_samples(model, tokenizer, batch: dict, *, max_new_tokens: int, temperature: float) -> dict:
    """The batch on-policy: an SFT batch's responses replaced by the student's samples; a
    preference batch keeps its pairs and gains the samples as a ``sample_`` sequence."""
    if "input_ids" in batch:
        return sample_batch(model, tokenizer, batch, max_new_tokens=max_new_tokens, temperature=temperature)
    samples = sample_batch(model, tokenizer, batch, prefix="chosen_", max_new_tokens=max_new_tokens,
                           temperature=temperature)
    return {**batch, **{f"sample_{key}": value for key, value in samples.items()}}


@torch.no_grad()
def sample_batch(model, tokenizer, batch: dict, *, max_new_tokens: int, temperature: float, prefix: str = "") -> dict:
    """A batch with the prompts of sequence `prefix` and responses sampled from `model`
    (labels on the sampled tokens)."""
    prompts = prompt_ids(batch, prefix)
    padded = tokenizer.pad({"input_ids": prompts}, padding=True, return_tensors="pt", padding_side="left")
    device = batch[f"{prefix}input_ids"].device
    was_training = model.training
    model.eval()
    generated = model.generate(input_ids=padded["input_ids"].to(device), attention_mask=padded["attention_mask"].to(device),
                               do_sample=True, temperature=temperature, max_new_tokens=max_new_tokens,
                               pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    model.train(was_training)
    examples = []
    for prompt, row in zip(prompts, generated[:, padded["input_ids"].shape[1]:].tolist()):
        if tokenizer.eos_token_id in row:  # keep the eos, drop what follows it
            row = row[: row.index(tokenizer.eos_token_id) + 1]
        examples.append({"input_ids": prompt + row, "labels": [-100] * len(prompt) + row})
    return {k: v.to(device) for k, v in collate(examples, tokenizer.pad_token_id).items()}
