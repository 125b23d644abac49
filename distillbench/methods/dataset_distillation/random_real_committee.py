"""random-real-committee — the random real images of `random-real` with the committee's soft labels (as cv-dd
labels its recovered images): set against cv-dd, it tells what the recovered images add over real ones."""

from __future__ import annotations

from dataclasses import dataclass

from distillbench.methods.base import register_method
from distillbench.methods.dataset_distillation.common import CommitteeLabels
from distillbench.methods.dataset_distillation.random_real import random_real_subset


@register_method("random-real-committee", family="dataset-distillation",
                 paper="baseline (CV-DD's relabelling, Cui et al. 2025, on random real images)",
                 summary="random real images of every class (as random-real), student trained on them with the "
                         "committee's soft labels (as cv-dd)")
@dataclass
class RandomRealCommittee(CommitteeLabels):
    """Random real images, labelled by the committee's vote."""

    def distil(self, real, experts, images_per_class, seed):
        return random_real_subset(real, images_per_class, seed)
