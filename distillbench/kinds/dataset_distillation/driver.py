"""Dataset distillation: a small synthetic training set made from a committee of experts, scored by the
accuracy of a student trained on it alone (the `cv-dd` method, the `dd-accuracy` benchmark).

Kept apart from the recipe runner because the product of a cell is a data set, not a trained student:

    committee (experts + priors) ──► recover_images(cv-dd) ──► synthetic ImageDataset (uint8, N per class)
                                                                   │
    fresh student ──► harness train loop (ImageBatching, committee vote as the teacher) ──► dd-accuracy

``python -m distillbench.kinds.dataset_distillation.driver recipes/pocket/dataset-distillation.yaml`` runs a
recipe: cv-dd and the baselines it is compared with (the same number of random real images per class,
trained with their hard labels, and with the committee's soft labels), for every seed, and writes
``leaderboard.json`` / ``leaderboard.md`` (mean over test items pooled across seeds, bootstrap CI, paired
test against the random-real baseline).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import yaml
from torch import nn

from distillbench.methods.classify.ce import CE
from distillbench.methods.classify.cv_dd import (CVDD, bn_statistics_loss, committee_logits, committee_recovery_loss,
                                                 committee_weights)

from distillbench.kinds.image_classifier.classifiers import ImageClassifier, initialised, load_classifier, load_directory, save_atomic
from distillbench.core.errors import UserInputError
from distillbench.kinds.image_classifier.images import ImageBatching, ImageDataset, load_image_dataset
from distillbench.core.plan import folder_name
from distillbench.core.recipe import Budget, stable_hash, validate_options
from distillbench.core.train import train


# --- the committee --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Expert:
    model: ImageClassifier
    prior: float  # accuracy in percent: what the committee's weights are a softmax of


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


# --- recovering the synthetic images ----------------------------------------------------------------
def _initial_images(method: CVDD, real: ImageDataset, classes: list[int], rng: random.Random,
                    generator: torch.Generator) -> torch.Tensor:
    if method.initialisation == "gaussian":
        return torch.randn(len(classes), *real.images.shape[1:], generator=generator)
    by_class = {c: torch.nonzero(real.labels == c).flatten().tolist() for c in classes}
    return real.batch([rng.choice(by_class[c]) for c in classes])


def _pixel_bounds(real: ImageDataset) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = torch.tensor(real.mean).view(1, 3, 1, 1), torch.tensor(real.std).view(1, 3, 1, 1)
    return -mean / std, (1 - mean) / std


def recover_images(method: CVDD, experts: list[Expert], real: ImageDataset, seed: int) -> ImageDataset:
    """`method.images_per_class` synthetic images of every class, one batch of all classes per image index,
    each batch recovered by `method.voters` experts drawn at random (CV-DD's recover.py loop)."""
    rng, generator = random.Random(seed), torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # torchvision's crops draw from the global RNG: seeded, restored
        torch.manual_seed(seed)
        return _recover(method, experts, real, rng, generator)


def _recover(method: CVDD, experts: list[Expert], real: ImageDataset, rng: random.Random,
             generator: torch.Generator) -> ImageDataset:
    from torchvision.transforms import v2

    classes = list(range(real.num_classes))
    labels = torch.tensor(classes)
    low, high = _pixel_bounds(real)
    # recover.py's augmentation: one crop (scale 0.08–1) and flip for the whole batch, resized back
    augment = v2.Compose([v2.RandomResizedCrop(real.images.shape[-1]), v2.RandomHorizontalFlip()]) \
        if method.augment else None
    for expert in experts:
        expert.model.eval().requires_grad_(False)
    batches = []
    for _ in range(method.images_per_class):
        voters = rng.sample(experts, min(method.voters, len(experts)))
        weights = committee_weights(torch.tensor([v.prior for v in voters]), method.weight_temperature)
        recorders = [BatchNormInputs(v.model) for v in voters]
        images = _initial_images(method, real, classes, rng, generator).requires_grad_(True)
        optimizer = torch.optim.Adam([images], lr=method.learning_rate, betas=(0.5, 0.9), eps=1e-8)
        try:
            for iteration in range(method.iterations):
                for group in optimizer.param_groups:  # cosine from lr to 0, no warm-up (lr_cosine_policy)
                    group["lr"] = 0.5 * (1 + math.cos(math.pi * iteration / method.iterations)) * method.learning_rate
                shift = (rng.randint(0, method.jitter), rng.randint(0, method.jitter))
                jittered = torch.roll(augment(images) if augment else images, shifts=shift, dims=(2, 3))
                logits = [v.model(jittered) for v in voters]
                bn = [recorder.loss(method.first_bn_multiplier) for recorder in recorders]
                loss = committee_recovery_loss(logits, labels, bn, weights, method.bn_weight)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    images.copy_(torch.maximum(torch.minimum(images, high), low))
        finally:
            for recorder in recorders:
                recorder.close()
        batches.append(images.detach())
    return _as_dataset(torch.cat(batches), labels.repeat(method.images_per_class), real, "cv-dd")


def _as_dataset(normalised: torch.Tensor, labels: torch.Tensor, real: ImageDataset, tag: str) -> ImageDataset:
    """Normalised float images back to uint8 pixels (the paper saves its images as files too)."""
    mean, std = torch.tensor(real.mean).view(1, 3, 1, 1), torch.tensor(real.std).view(1, 3, 1, 1)
    pixels = ((normalised * std + mean).clamp(0, 1) * 255).round().to(torch.uint8)
    ids = tuple(f"{tag}/{index:05d}" for index in range(len(labels)))
    return ImageDataset(f"{real.name}:{tag}", "train", pixels, labels, real.class_names, real.mean, real.std, ids)


def random_real_subset(real: ImageDataset, images_per_class: int, seed: int) -> ImageDataset:
    """The baseline: `images_per_class` real training images of every class, drawn at random."""
    rng = random.Random(seed)
    chosen = []
    for label in range(real.num_classes):
        pool = torch.nonzero(real.labels == label).flatten().tolist()
        chosen += rng.sample(pool, min(images_per_class, len(pool)))
    index = torch.tensor(chosen)
    return ImageDataset(f"{real.name}:random-real", "train", real.images[index], real.labels[index], real.class_names,
                        real.mean, real.std, tuple(real.ids[i] for i in chosen))


# --- training on a distilled set -------------------------------------------------------------------
def train_on(dataset: ImageDataset, method, committee: Committee | None, student: str, budget: Budget, seed: int,
             work: Path, augment: str = "flip") -> ImageClassifier:
    """A fresh `student` architecture trained on `dataset` alone with `method` (the committee as its teacher)."""
    model = initialised(student, dataset.num_classes, seed)
    frozen = {"teacher": committee} if committee is not None else {}
    result = train(method, model, dataset, budget, seed, work / "checkpoint", frozen=frozen,
                   batching=ImageBatching(dataset, augment, budget.batch_size), description=f"dd {work.name}")
    shutil.rmtree(work / "checkpoint", ignore_errors=True)
    return result.model if result.model is not None else model


# --- the recipe ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExpertSpec:
    """A committee member: a zoo/local classifier reference, or an architecture trained here with CE."""

    ref: str | None = None
    architecture: str | None = None
    steps: int = 600
    seed: int = 0


def build_expert(spec: ExpertSpec, real: ImageDataset, budget: Budget, cache: Path) -> Path:
    """The classifier directory of an expert trained with CE on `real` (cached by a hash of its spec and data)."""
    key = hashlib.sha256(json.dumps([asdict(spec), real.name, len(real), budget.model_dump()],
                                    sort_keys=True).encode()).hexdigest()[:12]
    target = cache / f"expert-{spec.architecture}-{key}"
    if (target / "classifier.json").is_file():
        return target
    model = initialised(spec.architecture, real.num_classes, spec.seed)
    steps = budget.model_copy(update={"steps": spec.steps})
    train(CE(), model, real, steps, spec.seed, target.with_name(target.name + ".build"),
          batching=ImageBatching(real, "flip", steps.batch_size), description=f"expert {spec.architecture}")
    shutil.rmtree(target.with_name(target.name + ".build"), ignore_errors=True)
    save_atomic(model, target)
    return target


def test_accuracy(model: nn.Module, benchmark) -> list[float]:
    items = benchmark.items()
    outputs = benchmark.predict(model, None, items, batch_size=256)
    return [benchmark.score(item, output).values["accuracy"] for item, output in zip(items, outputs)]


def _load_recipe(path: Path) -> dict:
    raw = yaml.safe_load(path.read_text())
    required = ("name", "source", "student", "committee", "budget", "seeds", "cv_dd", "benchmark")
    missing = [key for key in required if key not in raw]
    if missing:
        raise UserInputError([f"{path}: {key}: required" for key in missing])
    return raw


def _test_benchmark(raw: dict, path: Path):
    """dd-accuracy on the real test split of the recipe's own source: anything else would score a student
    on other data (or on the training images) under a dataset-distillation label."""
    from distillbench.benchmarks.dd_accuracy import DDAccuracy

    benchmark, problems = validate_options(DDAccuracy, {"dataset": raw["source"], **raw["benchmark"]}, "benchmark")
    if benchmark is not None and benchmark.split != "test":
        problems.append(f"benchmark.split: {benchmark.split!r}; dd-accuracy is scored on the test split")
    if benchmark is not None and benchmark.dataset != raw["source"]:
        problems.append(f"benchmark.dataset: {benchmark.dataset!r} is not the recipe's source {raw['source']!r}")
    if problems:
        raise UserInputError([f"{path}: {line}" for line in problems])
    return benchmark


def run(path: Path, out: Path | None = None) -> dict:
    from distillbench.benchmarks.dd_accuracy import DDAccuracy
    from distillbench.leaderboards.side_report import method_rows, write_board

    raw = _load_recipe(path)
    out = Path(out or raw.get("output_dir", f"runs/{raw['name']}"))
    out.mkdir(parents=True, exist_ok=True)
    method, problems = validate_options(CVDD, raw["cv_dd"], "cv_dd")
    if problems:
        raise UserInputError(problems)
    benchmark = _test_benchmark(raw, path)
    budget = Budget(**raw["budget"])
    real = load_image_dataset(raw["source"], "train", raw.get("train_size"))
    experts = []
    for entry in raw["committee"]:
        spec = ExpertSpec(**entry)
        model = (load_classifier(spec.ref) if spec.ref else
                 load_directory(build_expert(spec, real, Budget(**raw.get("expert_budget", raw["budget"])), out / "experts")))
        # The prior is the expert's accuracy on the real training images (not the test split the rows are scored on).
        on_train = DDAccuracy(dataset=raw["source"], split="train", n=raw.get("train_size"))
        experts.append(Expert(model, 100.0 * sum(test_accuracy(model, on_train)) / len(on_train.items())))
    committee = Committee(experts, method.label_weight_temperature)
    values: dict[str, dict[int, list[float]]] = {"random-real (CE)": {}, "random-real (committee labels)": {}, "cv-dd": {}}
    timings = {}
    shared = {key: value for key, value in raw.items() if key not in ("name", "output_dir", "seeds", "benchmark")}
    for seed in raw["seeds"]:
        started = time.perf_counter()
        synthetic = recover_images(method, experts, real, seed)
        timings[f"recover_seed{seed}"] = round(time.perf_counter() - started, 1)
        subset = random_real_subset(real, method.images_per_class, seed)
        cells = {"random-real (CE)": (subset, CE(), None), "random-real (committee labels)": (subset, method, committee),
                 "cv-dd": (synthetic, method, committee)}
        for name, (data, loss, teacher) in cells.items():
            # Keyed by content: a run interrupted, edited and started again never resumes the old checkpoint.
            work = out / "cells" / folder_name(name, seed, stable_hash({**shared, "cell": name, "seed": seed}))
            student = train_on(data, loss, teacher, raw["student"], budget, seed, work)
            values[name][seed] = test_accuracy(student, benchmark)
    rows = method_rows(values, baseline="random-real (CE)")
    board = {"name": raw["name"], "recipe": raw, "experts": [{"prior": e.prior} for e in experts],
             "committee_weights": committee.weights.tolist(), "seconds": timings, "metrics": {"accuracy": rows},
             "protocol": {**benchmark.protocol(), **benchmark.metric_definitions()}}
    return write_board(out, board, "random-real (CE)", "dd-accuracy",
                       methods={"random-real (CE)": "ce", "random-real (committee labels)": "cv-dd"})


def main(argv: list[str] | None = None) -> int:
    from distillbench.leaderboards.side_report import driver_main

    return driver_main("distillbench.kinds.dataset_distillation.driver",
                       "Run a dataset-distillation recipe (cv-dd against real subsets).", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
