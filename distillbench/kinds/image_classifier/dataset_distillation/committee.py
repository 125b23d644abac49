"""The committee of a dataset-distillation run: experts trained here with CE on the real training images
(cached by content key) or read from the zoo or a folder, each with its prior, and their vote as a teacher.

The committee's arithmetic (the prior-weighted vote, after CV-DD: see methods/dataset_distillation/cv_dd.py)
is the kind's, as the committee is: the methods that recover or label a set with it import it from here."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from distillbench.core.classes import top_classes
from distillbench.core.files import cell_lock
from distillbench.core.recipe import Budget
from distillbench.core.registry import METHODS
from distillbench.core.tensors import upcast
from distillbench.core.train import train
from distillbench.kinds.image_classifier.classifiers import ImageClassifier, initialised, save_atomic
from distillbench.kinds.image_classifier.images import ImageBatching, ImageDataset

# How experts and students see their training images: horizontal flips (p = 0.5), a function of (seed, step).
AUGMENT = "flip"
EXPERT_METHOD = "ce"  # how an expert is trained on the real images (looked up in METHODS: a kind imports no method)


@dataclass(frozen=True)
class Expert:
    """A committee member: a trained classifier and its prior, its accuracy in percent on the real training
    images (what the committee's weights are a softmax of)."""

    model: ImageClassifier
    prior: float


def committee_weights(prior_accuracies: torch.Tensor, temperature: float = 5.0) -> torch.Tensor:
    """w = softmax(prior / T): experts with better priors (accuracy in percent) get more say."""
    return (upcast(prior_accuracies) / temperature).softmax(0)


def committee_logits(voter_logits: list[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    """The committee's vote: Σ_i w_i z_i over the experts' logits [B, C]."""
    return sum(weight * upcast(logits) for weight, logits in zip(weights, voter_logits))


class Committee(nn.Module):
    """The experts' prior-weighted vote as a teacher for the train loop: `forward_features` returns
    Σ_i w_i z_i computed with batch statistics (train-mode BN; the running statistics are left as they are)."""

    def __init__(self, experts: list[Expert], weight_temperature: float):
        super().__init__()
        self.experts = nn.ModuleList(expert.model for expert in experts)
        self.register_buffer("weights", committee_weights(torch.tensor([e.prior for e in experts]), weight_temperature))

    def forward_features(self, images: torch.Tensor) -> tuple[torch.Tensor, None]:
        return committee_logits([_batch_statistics_logits(model, images) for model in self.experts],
                                self.weights), None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_features(images)[0]


def _batch_statistics_logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.training, m.momentum) for m in norms]
    for m in norms:  # momentum 0: running = 1·running + 0·batch, so the experts are not changed
        m.train()
        m.momentum = 0.0
    try:
        return model(images)
    finally:
        for m, (training, momentum) in zip(norms, saved):
            m.train(training)
            m.momentum = momentum


def build_expert(architecture: str, seed: int, real: ImageDataset, budget: Budget, target: Path) -> Path:
    """`target`, the classifier directory of a fresh `architecture` trained with CE on `real`: trained once
    (one process at a time), then read by every later run whose content key names the same folder."""
    with cell_lock(target.with_name(f".{target.name}.lock"), wait=True):
        if (target / "classifier.json").is_file():
            return target
        model = initialised(architecture, real.num_classes, seed)
        work = target.with_name(target.name + ".build")
        # The one call of the train loop outside StudentKind.fit: an expert is no cell of the plan (its own
        # budget, the real images), so it has no fit to go through.
        train(method=METHODS.get(EXPERT_METHOD)(), student=model, examples=real, budget=budget, seed=seed, checkpoint_dir=work,
              batching=ImageBatching(real, AUGMENT, budget.batch_size), description=f"expert {architecture}")
        shutil.rmtree(work, ignore_errors=True)
        save_atomic(model, target)
    return target


@torch.no_grad()
def accuracy_percent(model: ImageClassifier, data: ImageDataset, batch_size: int = 256) -> float:
    """Top-1 accuracy in percent on `data`, unaugmented, in eval mode, ties to the lower class (as top1 scores):
    an expert's prior, on the real training images (not the test split the rows are scored on)."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(data), batch_size):
        indices = range(start, min(start + batch_size, len(data)))
        best = [ranked[0] for ranked in top_classes(model(data.batch(indices).to(device)).float(), 1)]
        correct += sum(int(b == label) for b, label in zip(best, data.labels[start:start + batch_size].tolist()))
    return 100.0 * correct / len(data)
