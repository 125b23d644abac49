"""CV-DD — Dataset Distillation via Committee Voting (Cui et al., arXiv:2501.07575).

A committee of trained experts f_1..f_M, each with a prior weight w_i = softmax(prior_i / T_w) (T_w = 5;
the prior is the expert's accuracy in percent), distils N synthetic images per class. Every round
`voters` experts are drawn, and the synthetic images x̃ of a batch of classes y minimise

    L_recover = Σ_i w_i · [ CE(f_i(x̃), y) + r_bn · Σ_l m_l · (‖σ²_l(x̃) − σ²_l,BN‖₂ + ‖μ_l(x̃) − μ_l,BN‖₂) ]

over the expert's BatchNorm layers l (batch statistics of the layer's input against its running
statistics; m_1 = 10, the other m_l = 1), with Adam (betas 0.5/0.9), a cosine schedule, each iteration's
batch augmented (one random resized crop and horizontal flip for the whole batch, then a random roll of
up to 4 pixels: jitter) and clipping to the valid pixel range (recover/recover.py, utils_recover.py of
Jiacheng8/CV-DD@24097e9; w_i renormalised over the voters drawn). The defaults are the settings of the
authors' CIFAR-100 recovery scripts (recover/scripts/cifar100_experiments/recover_voter_ipc*.sh: lr 0.25,
4,000 iterations, r_bn 0.01, 2 voters, `--apply-data-augmentation`, patch initialisation), not recover.py's
argparse defaults (lr 0.1, 1,000 iterations, r_bn 0.05, no augmentation, Gaussian noise).

The student is then trained on the synthetic set alone, with soft labels from the committee's vote:
the sum of all the experts' logits on each (augmented) synthetic batch, weighted by v = softmax(prior / 10)
(relabel/relabel.py hard-codes that temperature; the committee scripts relabel_voter_*.sh pass all five
experts and their accuracies), computed with batch statistics (train-mode BN, the paper's BSSL), and a
temperature-scaled KL:

    L_student = τ² · KL(softmax(Σ_i v_i f_i(x̃) / τ) ‖ softmax(s(x̃) / τ))

τ = 4 is SRe2L's validation temperature and is not verified for CV-DD. The number of images per class
(IPC) is the recipe's (``data.images_per_class``), shared by every row of a run.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from annotated_types import Ge, Gt
from torch import nn
from torch.nn import functional as F

from distillbench.core.tensors import upcast
from distillbench.kinds.image_classifier.dataset_distillation.committee import Expert, committee_weights
from distillbench.kinds.image_classifier.images import ImageDataset
from distillbench.methods.base import register_method
from distillbench.methods.dataset_distillation.common import CommitteeLabels


def bn_statistics_loss(batch_means: list[torch.Tensor], batch_vars: list[torch.Tensor],
                       running_means: list[torch.Tensor], running_vars: list[torch.Tensor],
                       first_multiplier: float = 10.0) -> torch.Tensor:
    """Σ_l m_l (‖σ²_l − σ²_BN‖₂ + ‖μ_l − μ_BN‖₂), m_1 = `first_multiplier`, other m_l = 1."""
    total = 0.0
    for index, (mean, var, running_mean, running_var) in enumerate(zip(batch_means, batch_vars, running_means,
                                                                      running_vars)):
        weight = first_multiplier if index == 0 else 1.0
        total = total + weight * (torch.linalg.vector_norm(running_var - var)
                                  + torch.linalg.vector_norm(running_mean - mean))
    return total


def committee_recovery_loss(voter_logits: list[torch.Tensor], labels: torch.Tensor, voter_bn_losses: list[torch.Tensor],
                            weights: torch.Tensor, bn_weight: float = 0.05) -> torch.Tensor:
    """Σ_i w_i · (CE(f_i(x̃), y) + r_bn · BN_i): the synthetic images' objective for one batch of classes."""
    total = 0.0
    for weight, logits, bn_loss in zip(weights, voter_logits, voter_bn_losses):
        total = total + weight * (F.cross_entropy(upcast(logits), labels) + bn_weight * bn_loss)
    return total


@register_method("cv-dd", family="dataset-distillation", paper="Cui et al. 2025, arXiv:2501.07575",
                 summary="dataset distillation: synthetic images recovered by a prior-weighted committee "
                         "(CE + BN statistics), student trained on them with the committee's soft labels")
@dataclass
class CVDD(CommitteeLabels):
    """Committee-voting dataset distillation: `distil` recovers the synthetic set, `loss` trains the student on it."""

    voters: Annotated[int, Gt(0)] = 2  # experts drawn per round (the paper's N2 voter)
    iterations: Annotated[int, Gt(0)] = 4000  # recovery steps per batch of classes
    learning_rate: Annotated[float, Gt(0)] = 0.25
    jitter: Annotated[int, Ge(0)] = 4  # pixels (CIFAR)
    augment: bool = True  # a random resized crop and flip of each iteration's batch before the roll
    bn_weight: Annotated[float, Ge(0)] = 0.01  # r_bn
    first_bn_multiplier: Annotated[float, Ge(0)] = 10.0
    weight_temperature: Annotated[float, Gt(0)] = 5.0  # recovery: w = softmax(prior / 5) over the voters
    # The CIFAR-100 scripts start from patches of real images; "real" starts from random real images of the
    # class (whole images, not the code's patches), "gaussian" from noise (recover.py's argparse default).
    initialisation: Literal["gaussian", "real"] = "real"

    def distil(self, real, experts, images_per_class, seed):
        return recover_images(self, experts, real, images_per_class, seed)


# --- recovering the synthetic images ----------------------------------------------------------------
class BatchNormInputs:
    """Records, for every BatchNorm2d of a network, the per-channel mean and (biased) variance of its
    input on the last forward pass (the statistics CV-DD matches against the running ones)."""

    def __init__(self, network: nn.Module):
        self.layers = [m for m in network.modules() if isinstance(m, nn.BatchNorm2d)]
        self.means: list[torch.Tensor] = []
        self.variances: list[torch.Tensor] = []
        self._handles = [layer.register_forward_hook(self._record) for layer in self.layers]

    def _record(self, module, inputs, output) -> None:
        features = inputs[0]
        self.means.append(features.mean(dim=(0, 2, 3)))
        self.variances.append(features.permute(1, 0, 2, 3).flatten(1).var(1, unbiased=False))

    def loss(self, first_multiplier: float) -> torch.Tensor:
        running_means = [layer.running_mean for layer in self.layers]
        running_vars = [layer.running_var for layer in self.layers]
        loss = bn_statistics_loss(self.means, self.variances, running_means, running_vars, first_multiplier)
        self.means, self.variances = [], []
        return loss

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def _initial_images(method: CVDD, real: ImageDataset, classes: list[int], rng: random.Random,
                    generator: torch.Generator) -> torch.Tensor:
    if method.initialisation == "gaussian":
        return torch.randn(len(classes), *real.images.shape[1:], generator=generator)
    by_class = {c: torch.nonzero(real.labels == c).flatten().tolist() for c in classes}
    return real.batch([rng.choice(by_class[c]) for c in classes])


def _pixel_bounds(real: ImageDataset) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = torch.tensor(real.mean).view(1, 3, 1, 1), torch.tensor(real.std).view(1, 3, 1, 1)
    return -mean / std, (1 - mean) / std


def recover_images(method: CVDD, experts: list[Expert], real: ImageDataset, images_per_class: int,
                   seed: int) -> ImageDataset:
    """`images_per_class` synthetic images of every class, one batch of all classes per image index, each
    batch recovered by `method.voters` experts drawn at random (CV-DD's recover.py loop), on the experts' device."""
    rng, generator = random.Random(seed), torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # torchvision's crops draw from the global RNG: seeded, restored
        torch.manual_seed(seed)
        return _recover(method, experts, real, images_per_class, rng, generator)


def _recover(method: CVDD, experts: list[Expert], real: ImageDataset, images_per_class: int, rng: random.Random,
             generator: torch.Generator) -> ImageDataset:
    from torchvision.transforms import v2

    device = next(experts[0].model.parameters()).device
    classes = list(range(real.num_classes))
    labels = torch.tensor(classes)
    targets = labels.to(device)
    low, high = (bound.to(device) for bound in _pixel_bounds(real))
    # recover.py's augmentation: one crop (scale 0.08–1) and flip for the whole batch, resized back
    augment = v2.Compose([v2.RandomResizedCrop(real.images.shape[-1]), v2.RandomHorizontalFlip()]) \
        if method.augment else None
    for expert in experts:
        expert.model.eval().requires_grad_(False)
    batches = []
    for _ in range(images_per_class):
        voters = rng.sample(experts, min(method.voters, len(experts)))
        weights = committee_weights(torch.tensor([v.prior for v in voters]), method.weight_temperature).to(device)
        recorders = [BatchNormInputs(v.model) for v in voters]
        images = _initial_images(method, real, classes, rng, generator).to(device).requires_grad_(True)
        optimizer = torch.optim.Adam([images], lr=method.learning_rate, betas=(0.5, 0.9), eps=1e-8)
        try:
            for iteration in range(method.iterations):
                for group in optimizer.param_groups:  # cosine from lr to 0, no warm-up (lr_cosine_policy)
                    group["lr"] = 0.5 * (1 + math.cos(math.pi * iteration / method.iterations)) * method.learning_rate
                shift = (rng.randint(0, method.jitter), rng.randint(0, method.jitter))
                jittered = torch.roll(augment(images) if augment else images, shifts=shift, dims=(2, 3))
                logits = [v.model(jittered) for v in voters]
                bn = [recorder.loss(method.first_bn_multiplier) for recorder in recorders]
                loss = committee_recovery_loss(logits, targets, bn, weights, method.bn_weight)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    images.copy_(torch.maximum(torch.minimum(images, high), low))
        finally:
            for recorder in recorders:
                recorder.close()
        batches.append(images.detach().cpu())
    return _as_dataset(torch.cat(batches), labels.repeat(images_per_class), real, "cv-dd")


def _as_dataset(normalised: torch.Tensor, labels: torch.Tensor, real: ImageDataset, tag: str) -> ImageDataset:
    """Normalised float images back to uint8 pixels (the paper saves its images as files too)."""
    mean, std = torch.tensor(real.mean).view(1, 3, 1, 1), torch.tensor(real.std).view(1, 3, 1, 1)
    pixels = ((normalised * std + mean).clamp(0, 1) * 255).round().to(torch.uint8)
    ids = tuple(f"{tag}/{index:05d}" for index in range(len(labels)))
    return ImageDataset(f"{real.name}:{tag}", "train", pixels, labels, real.class_names, real.mean, real.std, ids)
