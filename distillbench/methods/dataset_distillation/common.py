"""What the dataset-distillation methods share: the two ways a student learns from a distilled set (its hard
labels, or the committee's soft labels); the experts they are given are the kind's (`Expert`).

A method of the ``dataset-distillation`` kind makes a small training set, `images_per_class` images of every
class, from the real training images and (where it uses one) a committee of trained experts: `distil`. The
kind then trains a fresh student on that set alone with the method's `loss`, on image batches
(kinds/image_classifier/images.py: ``images``, ``labels``, and for ``needs = ("teacher_logits",)`` the
committee's vote on the same augmented images).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, ClassVar

from annotated_types import Gt

from distillbench.kinds.image_classifier.dataset_distillation.committee import Expert
from distillbench.methods.classify.common import ClassifyMethod, soft_kl_loss

if TYPE_CHECKING:
    from distillbench.kinds.image_classifier.images import ImageDataset


class DistilledSetMethod(ClassifyMethod):
    """A method of the dataset-distillation kind: `distil` makes the set, `loss` trains the student on it."""

    data_kind = "distilled-set"
    supports_unlabeled = False
    # Whether the method draws on the committee (to make its set or to label it): only then are the experts
    # built, and only then do they enter its cells' keys.
    uses_committee: ClassVar[bool] = False

    @abstractmethod
    def distil(self, real: ImageDataset, experts: list[Expert], images_per_class: int, seed: int) -> ImageDataset:
        """`images_per_class` training images of every class of `real`, a function of `seed` (`experts` is
        empty for a method that does not use the committee)."""


@dataclass
class CommitteeLabels(DistilledSetMethod):
    """The student learns the committee's soft labels: the experts' logits on each augmented batch summed with
    weights v = softmax(prior / label_weight_temperature), computed with batch statistics, and

        L_student = τ² · KL(softmax(Σ_i v_i f_i(x̃) / τ) ‖ softmax(s(x̃) / τ))

    (CV-DD's relabelling; see cv_dd.py for where its settings come from)."""

    label_weight_temperature: Annotated[float, Gt(0)] = 10.0  # relabelling: v = softmax(prior / 10) over all
    temperature: Annotated[float, Gt(0)] = 4.0  # soft-label KL on the student (SRe2L's; unverified here)

    needs = ("teacher_logits",)  # the committee's vote on each batch (the committee is the teacher)
    uses_committee = True

    def loss(self, student, batch):
        return {"committee_kl": soft_kl_loss(student(batch["images"]), batch["teacher_logits"], self.temperature)}
