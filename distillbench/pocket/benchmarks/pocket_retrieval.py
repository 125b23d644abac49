"""``pocket-retrieval``: image–caption retrieval on pocket-shapes test scenes, Recall@1/5/10 both ways.

The standard definition (Flickr30K / MSCOCO, as in VSE++ and ALBEF's evaluation): a query is a hit at K
when one of its ground-truth matches is among the K highest-scoring gallery entries; Recall@K is the
fraction of queries that hit. Image→text queries every test image against the gallery of captions;
text→image queries every caption against the gallery of images.

Two pocket specifics, fixed here so that every row is scored alike:

* **Duplicate captions.** Many scenes share a caption (it does not say where shapes are). The caption
  gallery holds each distinct caption once; an image's ground truth is its caption. A text query is a
  distinct caption, and its ground truths are all the images drawn with it (as an MSCOCO image has five
  captions). Identical strings are never each other's negatives.
* **Ties.** The rank of a query is 1 + the number of *negatives* scoring at least as high as its best
  ground truth: ties count against the model (pessimistic). A model that scores everything alike gets
  rank = gallery size − positives + 1, never a lucky hit from index order (argsort-based scorers break
  ties by position, which rewards constant outputs). NaN scores rank below everything.

An item is one query; its output is that rank; its values are 0/1 hits (``i2t_r1`` … ``t2i_r10``), so
the leaderboard's CIs and paired tests apply per metric over the queries of that direction.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any

import torch
from annotated_types import Gt

from distillbench.benchmarks.base import Benchmark, ItemScore, register_benchmark
from distillbench.core.errors import UserInputError
from distillbench.pocket.shapes_retrieval import caption_pairs

RECALL_AT = (1, 5, 10)


def best_positive_rank(scores: list[float] | torch.Tensor, positives: list[int]) -> int:
    """1 + #negatives scoring ≥ the best positive (pessimistic ties; NaN is the lowest score)."""
    values = torch.as_tensor(scores, dtype=torch.float64).nan_to_num(nan=-math.inf)
    if not positives:
        raise ValueError("a query needs at least one ground-truth match")
    is_positive = torch.zeros(len(values), dtype=torch.bool)
    is_positive[torch.as_tensor(positives)] = True
    best = values[is_positive].max()
    return 1 + int((values[~is_positive] >= best).sum())


def recall_values(direction: str, rank: int) -> dict[str, float]:
    return {f"{direction}_r{k}": float(rank <= k) for k in RECALL_AT}


@register_benchmark("pocket-retrieval", family="retrieval", paper="Recall@K (Flickr30K/MSCOCO protocol)",
                    summary="image↔caption Recall@1/5/10 on pocket-shapes test scenes; duplicate captions merged, "
                            "pessimistic ties")
@dataclass(frozen=True)
class PocketRetrieval(Benchmark):
    """Image→text and text→image Recall@K of a dual (or cross) encoder on generated test scenes."""

    n: Annotated[int, Gt(0)] = 500  # test scenes (images)
    seed: int = 0

    binary_metrics = tuple(f"{d}_r{k}" for d in ("i2t", "t2i") for k in RECALL_AT)

    @cached_property
    def _data(self):
        pairs = caption_pairs("test", self.n, self.seed)
        gallery = list(dict.fromkeys(pairs.captions))  # distinct captions, in order of first appearance
        index = {caption: i for i, caption in enumerate(gallery)}
        images_of = {i: [] for i in range(len(gallery))}
        for image, caption in enumerate(pairs.captions):
            images_of[index[caption]].append(image)
        tokens = pairs.tokens[[pairs.captions.index(c) for c in gallery]]
        return pairs, gallery, index, images_of, tokens

    def items(self) -> list[dict[str, Any]]:
        pairs, gallery, index, images_of, _ = self._data
        images = [{"id": f"i2t/{pairs.ids[i].split('/')[-1]}", "direction": "i2t", "query": i,
                   "positives": [index[pairs.captions[i]]], "answer": pairs.captions[i]} for i in range(len(pairs))]
        texts = [{"id": f"t2i/{hashlib.sha256(caption.encode()).hexdigest()[:12]}", "direction": "t2i", "query": c,
                  "positives": images_of[c], "question": caption} for c, caption in enumerate(gallery)]
        return images + texts

    @torch.no_grad()
    def predict(self, model, tokenizer, items, *, batch_size):
        """Each item's rank; `model.score_matrix(images, tokens)` gives the [images, captions] scores."""
        pairs, _, _, _, tokens = self._data
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        scores = model.score_matrix(pairs.image_batch(range(len(pairs))).to(device), tokens.to(device)).float().cpu()
        model.train(was_training)
        ranks = []
        for item in items:
            row = scores[item["query"]] if item["direction"] == "i2t" else scores[:, item["query"]]
            ranks.append(best_positive_rank(row, item["positives"]))
        return ranks

    def score(self, item, output) -> ItemScore:
        try:
            rank = int(output)
        except (TypeError, ValueError):
            raise UserInputError(f"{item['id']}: a retrieval output is the rank of the best match, got {output!r}") from None
        if rank < 1:
            raise UserInputError(f"{item['id']}: rank {rank} < 1")
        values = recall_values(item["direction"], rank)
        return ItemScore(values, f"best ground truth at rank {rank}")

    def protocol(self) -> dict[str, Any]:
        pairs, gallery, *_ = self._data
        digest = hashlib.sha256(pairs.images.numpy().tobytes() + "\n".join(pairs.captions).encode()).hexdigest()[:16]
        return {"scorer_version": self.scorer_version, "images": len(pairs), "distinct_captions": len(gallery),
                "data_hash": digest, "recall_at": list(RECALL_AT),
                "rules": "hit@K if a ground truth is in the top K; duplicate captions merged into one gallery entry "
                         "(a caption's ground truths: every image drawn with it); ties count against the model"}
