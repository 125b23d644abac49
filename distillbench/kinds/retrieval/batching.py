"""How the train loop turns image–caption pairs into a retrieval method's batches (see core/train.py)."""

from __future__ import annotations

from typing import Any

import torch

from distillbench.core.train import Batching


class RetrievalBatching(Batching):
    """The train loop's batches of image–caption pairs (see `distillbench.methods.classify.info_nce.RetrievalMethod`).

    No augmentation: a flip would turn "left of" into "right of" and reorder the caption's shapes."""

    unit = "pairs"

    def __init__(self, pairs, batch_size: int):
        self.pairs = pairs  # `data.CaptionPairs`
        self.steps_per_epoch = max(1, len(pairs) // batch_size)

    def lengths(self, examples) -> tuple[int, ...]:
        return (1,) * len(self.pairs)

    def collate(self, examples, indices: list[int], seed: int, step: int, part: int, device) -> dict[str, Any]:
        return {"images": self.pairs.image_batch(indices).to(device), "captions": self.pairs.tokens[indices].to(device),
                "positives": self.pairs.same_caption(indices).to(device), "example_index": list(indices),
                "epoch": step // self.steps_per_epoch + 1}

    @torch.no_grad()
    def add_signals(self, batch: dict, method, frozen: dict) -> int:
        """``teacher_scores`` [B, B]: the cross-encoder on every (image, caption) pair of the batch."""
        if "teacher_scores" not in method.needs:
            return 0
        batch["teacher_scores"] = frozen["teacher"].score_matrix(batch["images"], batch["captions"])
        return len(batch["images"]) ** 2

    def count(self, batch: dict) -> int:
        return len(batch["images"])

    def weight_count(self, batch: dict, normalize_by: str) -> int:
        return len(batch["images"])
