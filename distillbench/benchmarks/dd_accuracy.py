"""``dd-accuracy``: the dataset-distillation score — top-1 accuracy, on the real test split, of a student
trained on nothing but a distilled (synthetic) training set.

The scorer is `top1`'s (one item per test image, 0/1 per item, ties to the lower class index); what
makes the number a dataset-distillation number is how the scored model was trained, which the protocol
records: a fresh student, trained only on the distilled images with the labels the method provides
(the ``dataset-distillation`` kind, `distillbench.kinds.image_classifier.dataset_distillation`). Rows are comparable when
they share the student architecture, the number of images per class and the training budget, as the rows of
one recipe do.
"""

from __future__ import annotations

from dataclasses import dataclass
from distillbench.benchmarks.base import register_benchmark
from distillbench.benchmarks.top1 import Top1


@register_benchmark("dd-accuracy", family="dataset-distillation", paper="dataset distillation (e.g. Cui et al. 2025, "
                    "arXiv:2501.07575)", summary="top-1 on the real test split of a student trained only on a "
                    "distilled image set")
@dataclass(frozen=True)
class DDAccuracy(Top1):
    """Top-1 accuracy of a student trained on a distilled set alone, on the real test images."""

    def protocol(self):
        return {**super().protocol(), "trained_on": "the distilled set alone (a fresh student; see "
                                                     "distillbench.kinds.image_classifier.dataset_distillation)"}
