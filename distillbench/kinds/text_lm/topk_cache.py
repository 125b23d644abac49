"""The teacher signal cache: top-k log-probs plus the remainder mass, computed once per
(teacher, training examples, k) and shared by every method cell of a run directory.

A dense teacher distribution over a vocabulary of V tokens costs V floats a position; the
cache keeps k log-probs (float16) and their token ids (int32) and nothing else, since the
remainder mass 1 − Σ top-k follows from them. Methods still receive a full
``teacher_logits`` tensor: the k cached log-probs at their tokens and the remainder spread
evenly over the other V − k tokens (DistillKit's "symmetric uniform" missing-mass rule),
so every loss runs unchanged; with k = V it is the dense distribution exactly. Only the
dataset's own sequences are cached; responses sampled during training (on-policy steps)
are scored by the live teacher.

One file a cache, ``<run>/signals/<teacher fingerprint>-<examples hash>-k<k>.safetensors``
(written atomically), with the number of teacher passes it took and its size in its metadata.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from distillbench.core.files import temporary_name
from distillbench.core.progress import progress
from distillbench.kinds.text_lm.data import collate, sequence_prefixes
from distillbench.kinds.text_lm.logps import sequence_logps

CACHE_BATCH = 64


def examples_hash(examples: list[dict]) -> str:
    digest = hashlib.sha256()
    for example in examples:
        digest.update(json.dumps(example, sort_keys=True).encode())
    return digest.hexdigest()[:16]


class SignalCache:
    """Top-k teacher log-probs for every sequence of a list of tokenized examples."""

    def __init__(self, values: torch.Tensor, indices: torch.Tensor,
                 spans: dict[str, tuple[torch.Tensor, torch.Tensor]], vocab_size: int, metadata: dict):
        # spans: sequence prefix -> (start, count) of each example's positions in the flat tensors
        self.values, self.indices, self.spans = values, indices, spans
        self.vocab_size, self.metadata = vocab_size, metadata

    @property
    def k(self) -> int:
        return self.values.shape[1]

    @classmethod
    def build_or_load(cls, directory: Path, teacher, teacher_fingerprint: str, examples: list[dict], k: int
                      ) -> SignalCache:
        # the whole fingerprint, hashed: hub fingerprints are "<id>@<revision>", and their first 16 characters
        # ("meta-llama/Llama") named two teachers alike
        teacher_key = hashlib.sha256(teacher_fingerprint.encode()).hexdigest()[:16]
        path = directory / f"{teacher_key}-{examples_hash(examples)}-k{k}.safetensors"
        if not path.is_file():
            cls._build(path, teacher, examples, k)
        return cls.load(path)

    @staticmethod
    @torch.no_grad()
    def _build(path: Path, teacher, examples: list[dict], k: int) -> None:
        device = next(teacher.parameters()).device
        teacher.eval()
        prefixes = sequence_prefixes(collate(examples[:1], 0))
        values, indices, cursor, passes = [], [], 0, 0
        starts = {prefix: torch.zeros(len(examples), dtype=torch.long) for prefix in prefixes}
        counts = {prefix: torch.zeros(len(examples), dtype=torch.long) for prefix in prefixes}
        with progress(total=len(examples), description=f"teacher top-{k} cache") as bar:
            for first in range(0, len(examples), CACHE_BATCH):
                chunk = examples[first:first + CACHE_BATCH]
                batch = {key: value.to(device) for key, value in collate(chunk, 0).items()}
                for prefix in prefixes:
                    logits = teacher(input_ids=batch[f"{prefix}input_ids"],
                                     attention_mask=batch[f"{prefix}attention_mask"]).logits[:, :-1]
                    top = torch.log_softmax(logits.float(), dim=-1).topk(min(k, logits.size(-1)), dim=-1)
                    passes += len(chunk)
                    for row, example in enumerate(chunk):
                        positions = len(example[f"{prefix}input_ids"]) - 1
                        values.append(top.values[row, :positions].half().cpu())
                        indices.append(top.indices[row, :positions].int().cpu())
                        starts[prefix][first + row], counts[prefix][first + row] = cursor, positions
                        cursor += positions
                bar.advance(len(chunk))
        tensors = {"values": torch.cat(values), "indices": torch.cat(indices),
                   **{f"start:{p}": t for p, t in starts.items()}, **{f"count:{p}": t for p, t in counts.items()}}
        metadata = {"teacher_passes": str(passes), "vocab_size": str(logits.size(-1)), "positions": str(cursor),
                    "bytes": str(sum(t.numel() * t.element_size() for t in tensors.values()))}
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = temporary_name(path)
        save_file(tensors, str(staging), metadata=metadata)
        staging.replace(path)

    @classmethod
    def load(cls, path: Path) -> SignalCache:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata()
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        spans = {key.removeprefix("start:"): (value, tensors["count:" + key.removeprefix("start:")])
                 for key, value in tensors.items() if key.startswith("start:")}
        return cls(tensors["values"], tensors["indices"], spans, int(metadata["vocab_size"]), metadata)

    def bytes_per_position(self) -> float:
        return (self.values.element_size() + self.indices.element_size()) * self.k

    def teacher_logits(self, example_indices: list[int], prefix: str, width: int, device) -> torch.Tensor:
        """[B, width − 1, V] log-probs for the sequences `prefix` of examples `example_indices`: the cached
        top-k, and the remainder spread evenly over the other tokens (positions past a sequence's
        end get a uniform distribution; its labels mask them)."""
        starts, counts = self.spans[prefix]
        dense = torch.full((len(example_indices), width - 1, self.vocab_size), -math.log(self.vocab_size))
        others = self.vocab_size - self.k
        for row, index in enumerate(example_indices):
            start, count = int(starts[index]), int(counts[index])
            values = self.values[start:start + count].float()
            remainder = (1 - values.exp().sum(-1, keepdim=True)).clamp(min=1e-12)
            dense[row, :count] = torch.log(remainder / others) if others else -math.inf
            dense[row, :count].scatter_(-1, self.indices[start:start + count].long(), values)
        return dense.to(device)


def reference_sides(batch: dict) -> list[str]:
    """The sequences of a batch that a reference scores: 'chosen', 'rejected', 'rank0', ...
    (not an sft batch's single sequence, nor on-policy samples, which change every step)."""
    return [prefix.rstrip("_") for prefix in sequence_prefixes(batch) if prefix not in ("", "sample_")]


class ReferenceLogps:
    """A frozen reference's summed response log-probs for every sequence of the training examples.

    DPO-style losses compare the policy with a reference that does not change, on data that
    does not change, so its log-probs are the same every epoch: computed once before training
    instead of once per step. They are computed in a fixed order (by length, in batches of the
    training batch size), so the values do not depend on the steps' order and a resumed run
    sees exactly the ones an uninterrupted run saw.
    """

    def __init__(self, logps: dict[str, torch.Tensor], passes: int):
        self.logps, self.passes = logps, passes  # side -> [N] float32; forward passes it took

    @classmethod
    @torch.no_grad()
    def compute(cls, reference, examples: list[dict], pad_id: int, batch_size: int,
                chunk_size: int | None = None) -> ReferenceLogps:
        device = next(reference.parameters()).device
        sides = reference_sides(collate(examples[:1], pad_id))
        logps = {side: torch.zeros(len(examples)) for side in sides}
        order = sorted(range(len(examples)), key=lambda i: max(len(v) for k, v in examples[i].items()
                                                               if k.endswith("input_ids")))
        with progress(total=len(examples), description="reference log-probs") as bar:
            for first in range(0, len(order), batch_size):
                rows = order[first:first + batch_size]
                batch = {k: v.to(device) for k, v in collate([examples[i] for i in rows], pad_id).items()}
                if chunk_size:
                    batch["chunk_size"] = chunk_size
                for side in sides:
                    logps[side][rows] = sequence_logps(reference, batch, side).float().cpu()
                bar.advance(len(rows))
        return cls(logps, len(examples) * len(sides))

    def lookup(self, side: str, example_indices: list[int], device) -> torch.Tensor:
        return self.logps[side][example_indices].to(device)
