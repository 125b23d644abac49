"""random-real — the baseline a distilled set must beat: as many real training images of every class as the
distilled sets hold, drawn at random, and the student trained on them with their hard labels (CE)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from distillbench.kinds.image_classifier.images import ImageDataset
from distillbench.methods.base import register_method
from distillbench.methods.classify.common import cross_entropy_loss
from distillbench.methods.dataset_distillation.common import DistilledSetMethod


def random_real_subset(real: ImageDataset, images_per_class: int, seed: int) -> ImageDataset:
    """`images_per_class` real training images of every class (all of a smaller class), drawn at random."""
    rng = random.Random(seed)
    chosen = []
    for label in range(real.num_classes):
        pool = torch.nonzero(real.labels == label).flatten().tolist()
        chosen += rng.sample(pool, min(images_per_class, len(pool)))
    index = torch.tensor(chosen)
    return ImageDataset(f"{real.name}:random-real", "train", real.images[index], real.labels[index], real.class_names,
                        real.mean, real.std, tuple(real.ids[i] for i in chosen))


@register_method("random-real", family="dataset-distillation", paper="baseline (random real images)",
                 summary="dataset distillation's baseline: random real images of every class, as many as the "
                         "distilled sets hold, student trained on them with their hard labels (CE)")
@dataclass
class RandomReal(DistilledSetMethod):
    """Random real images with their labels; no committee."""

    def distil(self, real, experts, images_per_class, seed):
        return random_real_subset(real, images_per_class, seed)

    def loss(self, student, batch):
        return {"ce": cross_entropy_loss(student(batch["images"]), batch["labels"])}
