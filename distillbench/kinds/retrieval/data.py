"""The retrieval kind's data: image–caption pairs, the captions as word ids over the pairs' vocabulary.

Many pairs may share a caption (a pocket-shapes caption does not say where the shapes are), which the
retrieval benchmark and the losses treat as equivalent pairs, never as negatives of each other. A world that
makes pairs (`distillbench.pocket.shapes_retrieval`) registers a reader in `POCKET_DATA`, family
``caption-pairs``, called as reader(split, size, seed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

CAPTION_PAIRS = "caption-pairs"  # the POCKET_DATA family of pair readers


@dataclass(frozen=True, eq=False)
class CaptionPairs:
    """(image, caption) pairs: uint8 images [N, 3, H, W], captions, tokens [N, L] (ids into `vocabulary`, 0 the
    padding), item ids, and the mean and std a batch of images is normalised with."""

    split: str
    images: torch.Tensor
    captions: tuple[str, ...]
    tokens: torch.Tensor
    ids: tuple[str, ...]
    vocabulary: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __len__(self) -> int:
        return len(self.captions)

    def image_batch(self, indices) -> torch.Tensor:
        images = self.images[torch.as_tensor(list(indices), dtype=torch.long)].float() / 255.0
        return (images - torch.tensor(self.mean).view(1, 3, 1, 1)) / torch.tensor(self.std).view(1, 3, 1, 1)

    def same_caption(self, indices) -> torch.Tensor:
        """[B, B] True where two pairs of the batch have the same caption (the diagonal included)."""
        captions = [self.captions[i] for i in indices]
        return torch.tensor([[a == b for b in captions] for a in captions])
