"""On-policy batches: the student's own samples in place of the dataset responses.

Methods such as GKD (with probability λ per step) or DistiLLM train on responses the
student samples itself; the teacher then scores those. Preference methods that learn on
student samples (ADPA) keep their pairs and get the samples beside them. Whether a step is on-policy is a
pure function of (seed, step), so a resumed run makes the same choices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from distillbench.kinds.text_lm.data import collate


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
def continue_ids(model, tokenizer, contexts: list[list[int]], *, max_new_tokens: int, temperature: float,
                 batch_size: int = 64) -> list[list[int]]:
    """Sampled continuations of raw token contexts (no chat template added), cut after the eos."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    continuations = []
    for start in range(0, len(contexts), batch_size):
        chunk = contexts[start:start + batch_size]
        padded = tokenizer.pad({"input_ids": chunk}, padding=True, return_tensors="pt", padding_side="left")
        generated = model.generate(input_ids=padded["input_ids"].to(device),
                                   attention_mask=padded["attention_mask"].to(device), do_sample=True,
                                   temperature=temperature, max_new_tokens=max_new_tokens,
                                   pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        for row in generated[:, padded["input_ids"].shape[1]:].tolist():
            continuations.append(row[: row.index(tokenizer.eos_token_id) + 1] if tokenizer.eos_token_id in row else row)
    model.train(was_training)
    return continuations


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


@dataclass
class AdaptiveOffPolicy:
    """DistiLLM's adaptive off-policy schedule (Ko et al. 2024, arXiv:2402.03898; jongwooko/distillm
    ``finetune.py``), a stateful replacement for a fixed on-policy probability.

    The probability p of learning from student samples starts at `initial` and rises by
    `increment` (capped at 1) whenever the student's validation NLL has risen by at least
    `loss_eps` since the last rise. Each step draws r ~ U(0, 1) (a pure function of seed and
    step): with r below p·(1 − step/total) (``decreasing``; ``constant``: p/2; ``increasing``:
    p·step/total), or below p while the replay buffer is not yet full, the student samples
    fresh responses, which also enter the buffer (FIFO, `capacity` sequences); otherwise,
    with r below p, the step replays sequences drawn from the buffer; else it uses the data.
    Its state is saved in every checkpoint, so a resumed run makes the same choices.
    """

    initial: float = 0.0
    loss_eps: float = 0.1
    increment: float = 0.1
    capacity: int = 1000
    replay_ratio: str = "decreasing"
    probability: float = field(init=False)
    previous_loss: float | None = field(init=False, default=None)
    buffer: list[dict] = field(init=False, default_factory=list)

    def __post_init__(self):
        self.probability = self.initial

    def choose(self, seed: int, step: int, total: int) -> str:
        """'fresh', 'replay' or 'data' for step `step` of `total`."""
        draw = torch.rand((), generator=torch.Generator().manual_seed(seed * 7_919 + step)).item()
        share = {"decreasing": 1 - step / total, "constant": 0.5, "increasing": step / total}[self.replay_ratio]
        if draw < self.probability * share or (draw < self.probability and len(self.buffer) < self.capacity):
            return "fresh"
        return "replay" if draw < self.probability else "data"

    def observe(self, validation_loss: float) -> None:
        if self.previous_loss is None:
            self.previous_loss = validation_loss
        elif validation_loss >= self.previous_loss + self.loss_eps:
            self.probability = min(self.probability + self.increment, 1.0)
            self.previous_loss = validation_loss

    def remember(self, batch: dict) -> None:
        """Add each sampled sequence (padding stripped) to the buffer, dropping the oldest past capacity."""
        for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"]):
            length = int(mask.sum())
            self.buffer.append({"input_ids": ids[:length].tolist(), "labels": labels[:length].tolist()})
        del self.buffer[: max(0, len(self.buffer) - self.capacity)]

    def replay(self, seed: int, step: int, size: int) -> list[dict]:
        generator = torch.Generator().manual_seed(seed * 104_729 + step)
        order = torch.randperm(len(self.buffer), generator=generator)[:size].tolist()
        return [self.buffer[i] for i in order]

    def state_dict(self) -> dict:
        return {"probability": self.probability, "previous_loss": self.previous_loss, "buffer": self.buffer}

    def load_state_dict(self, state: dict) -> None:
        self.probability, self.previous_loss, self.buffer = state["probability"], state["previous_loss"], state["buffer"]
