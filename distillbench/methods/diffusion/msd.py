"""MSD — multi-student distillation (Song, Lorraine, Nie, Kreis & Lucas, "Multi-student Diffusion Distillation
for Better One-step Generators", arXiv:2410.23274; ICML 2025).

One one-step generator has to cover every prompt; MSD splits the condition space into K disjoint, equal,
semantically close parts and distils one student per part, each owning its prompts at inference (one network
evaluation per sample, as with one student). On class-conditional ImageNet the parts are blocks of
consecutive classes; here the world's classes are split the same way (`points.route`: class c to student
⌊c·K/classes⌋). Each student k is trained by distribution matching on its own prompts only:

    G_k = Distill(teacher, {c : route(c) = k})
    L   = Σ_k (n_k / n) · L_DMD2(G_k, critic_k; the step's samples whose prompt is k's)

with DMD2's losses per student (its own fake-score critic and GAN head, two time scales; `dmd2.DMD2`), so a
step costs what one DMD2 step on the same batch costs. The students are saved together as a routed model
(`points.RoutedDenoiser`: students/<k>/ and router.json). An empty prompt names no class: it goes to student
i mod K by its position in the batch (and so at unconditional sampling every student draws an equal share).

Departures: the paper's students first train with DM plus a regression loss on the whole (unpartitioned)
paired set, then with ADM (DMD2's GAN term); here both are DMD2's single stage. Smaller students with teacher
score matching (its section 3.3) are not here: the students are copies of the student model. No code was
released; the partition and the losses follow the paper's description as summarised in the reading notes.
Default: the paper's four same-sized students.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Gt
from torch import nn

from distillbench.kinds.diffusion.points import RoutedDenoiser, route
from distillbench.methods.base import register_method
from distillbench.methods.diffusion.critic import GeneratorsAndCritics
from distillbench.methods.diffusion.dmd2 import DMD2

PER_SAMPLE = ("class_labels", "noise", "clean")  # a batch's fields with one row per sample


def owned_rows(batch: dict, owners: torch.Tensor, student: int) -> dict | None:
    """The batch restricted to the samples `student` owns (None when it owns none)."""
    rows = owners == student
    if not rows.any():
        return None
    return {**batch, **{name: batch[name][rows] for name in PER_SAMPLE}}


@register_method("msd", family="diffusion", paper="Song et al. 2024, arXiv:2410.23274",
                 summary="several one-step students, each distilled (DMD2) on a block of the classes it then owns")
@dataclass
class MSD(DMD2):
    students: Annotated[int, Gt(1)] = 4

    def training_module(self, student: nn.Module) -> nn.Module:
        return GeneratorsAndCritics(student, self.students, self.gan_generator_weight > 0)

    def trained_model(self, module: nn.Module) -> nn.Module:
        return RoutedDenoiser([part.generator for part in module.parts])

    def loss(self, student: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        """DMD2's terms of each student on its own samples, weighted by their share of the batch."""
        labels = batch["class_labels"]
        owners = route(labels, batch["teacher"].config.classes, self.students)
        terms: dict[str, torch.Tensor] = {}
        for index, part in enumerate(student.parts):
            owned = owned_rows(batch, owners, index)
            if owned is None:
                continue
            share = len(owned["class_labels"]) / len(labels)
            for name, value in super().loss(part, owned).items():
                terms[name] = terms.get(name, 0.0) + share * value
        return terms
