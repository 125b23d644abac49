"""The 2-D pocket world: a mixture of Gaussians with a known density, and a small diffusion teacher of it.

Mode-seeking against mode-covering claims (f-distill's forward KL or JS against reverse KL, diversity
distillation's recall at equal precision) need a target whose modes and density are known exactly; on the
plane they are checkable in seconds (`distillbench.benchmarks.sample_metrics`).

* **The world.** ``grid``: 16 equally weighted isotropic Gaussians on a 4 × 4 grid of spacing 2 (the
  mode-collapse benchmark of the GAN literature, with an even side so that no mode sits at the mixture's
  mean, where a one-step sampler's posterior mean lands), standard deviation 0.2. Each mode's class, the
  pocket analogue of a prompt, is its row: 4 classes of 4 modes. Models see the points divided by
  `Mixture.scale` (3: the outer means at ±1), as diffusion models expect data of unit range.
* **The teacher.** `distillbench.kinds.diffusion.points.PointDenoiser` trained with diffusers' DDPM
  scheduler (1,000 steps, cosine schedule, v-prediction), the class dropped 10% of the time for
  classifier-free guidance; sampled with DDIM. Many steps cover every mode; one step predicts the mean of
  the posterior from pure noise, which lies between modes.
* **The weak-prompt teacher** (``pocket:gaussians2d-noisy-teacher``): the same, trained on labels of which
  half (`label_noise`) are replaced by a class drawn at random, as web captions often miss what an image
  shows. Its conditional density is then (1 − ε) p(x | c) + ε p(x): unguided, 62.5% of a prompt's samples
  land on the prompt's modes, and classifier-free guidance at w sharpens that towards 1 (the ratio
  p(x | c)/p(x) is 2.5 on the prompt's modes and 0.5 elsewhere), as CFG does for a text-to-image model.
  The prompted board (`recipes/pocket/points-prompted.yaml`) distils it, so that the methods built on
  guidance (Decoupled DMD, SNOOPI, SiD-LSG) have something to gain; on the clean teacher guidance changes
  nothing (its dev high-quality share is 0.98 at every scale from 1 to 4).

Built on first use into the user cache (``pocket:gaussians2d-teacher``; tiny under
``DISTILLBENCH_ZOO_SCALE=tiny``), deterministic for a spec on one CPU thread.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import DDPMScheduler

from distillbench.core.registry import POCKET_MODELS
from distillbench.kinds.diffusion.points import Mixture, PointDenoiser, PointModel, load_point_model, save_point_model
from distillbench.pocket import builds
from distillbench.pocket.zoo import cache_root

MANIFEST = "zoo.json"
FORMAT_VERSION = 2  # part of every spec hash: bump when the world or the loop change what a spec builds


def grid(side: int = 4, spacing: float = 2.0, std: float = 0.2) -> Mixture:
    """`side`² equal modes on a square grid centred on the origin; a mode's class is its row."""
    offsets = [spacing * (i - (side - 1) / 2) for i in range(side)]
    means = tuple((x, y) for y in offsets for x in offsets)
    return Mixture(means, std, tuple([1 / side**2] * side**2), tuple(i // side for i in range(side**2)),
                   scale=max(offsets))


WORLDS = {"grid": grid}


@dataclass(frozen=True)
class TeacherSpec:
    name: str
    world: str = "grid"
    hidden: int = 256
    layers: int = 3
    steps: int = 8000
    batch_size: int = 512
    learning_rate: float = 1e-3
    uncond_fraction: float = 0.1
    seed: int = 0
    format_version: int = FORMAT_VERSION
    label_noise: float = 0.0  # share of training labels replaced by a uniformly drawn class

    def spec_hash(self) -> str:
        if self.label_noise:
            return builds.spec_hash(self)
        # the specs made before `label_noise` existed keep their hash (and their cached builds and cell keys)
        fields = {name: value for name, value in asdict(self).items() if name != "label_noise"}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


FULL_SPECS = {"gaussians2d-teacher": TeacherSpec("gaussians2d-teacher"),
              "gaussians2d-noisy-teacher": TeacherSpec("gaussians2d-noisy-teacher", label_noise=0.5)}
TINY_SPECS = {name: TeacherSpec(name, hidden=32, layers=1, steps=50, batch_size=64, label_noise=spec.label_noise)
              for name, spec in FULL_SPECS.items()}


def specs() -> dict[str, TeacherSpec]:
    return TINY_SPECS if os.environ.get("DISTILLBENCH_ZOO_SCALE") == "tiny" else FULL_SPECS


def training_scheduler() -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                         clip_sample=False)


def train(spec: TeacherSpec, log=print) -> tuple[PointDenoiser, dict]:
    """The teacher of `spec`, trained from scratch on fresh samples of its world each step."""
    started = time.perf_counter()
    torch.manual_seed(spec.seed)
    world = WORLDS[spec.world]()
    model = PointDenoiser(dimension=2, classes=world.class_count, hidden=spec.hidden, layers=spec.layers)
    scheduler = training_scheduler()
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=0.0)
    cosine = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / spec.steps)))
    generator = torch.Generator().manual_seed(spec.seed)
    losses = []
    for step in range(spec.steps):
        points, modes = world.sample(spec.batch_size, seed=spec.seed * 1_000_003 + step)
        clean = torch.as_tensor(points / world.scale, dtype=torch.float32)
        labels = torch.as_tensor(np.asarray(world.classes)[modes])
        if spec.label_noise:  # drawn only then: a clean spec's random stream (and its build) stays as it was
            noisy = torch.rand(spec.batch_size, generator=generator) < spec.label_noise
            labels[noisy] = torch.randint(world.class_count, (int(noisy.sum()),), generator=generator)
        labels[torch.rand(spec.batch_size, generator=generator) < spec.uncond_fraction] = world.class_count
        noise = torch.randn(clean.shape, generator=generator)
        timesteps = torch.randint(scheduler.config.num_train_timesteps, (spec.batch_size,), generator=generator)
        prediction = model(scheduler.add_noise(clean, noise, timesteps), timesteps, labels)
        loss = torch.nn.functional.mse_loss(prediction, scheduler.get_velocity(clean, noise, timesteps))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        cosine.step()
        losses.append(float(loss.detach()))
        if log and (step + 1) % 500 == 0:
            log(f"{spec.name}: step {step + 1}/{spec.steps}, loss {np.mean(losses[-500:]):.4f}")
    model.eval()
    report = {"train_seconds": round(time.perf_counter() - started, 1),
              "final_loss": round(float(np.mean(losses[-min(200, len(losses)):])), 4),
              "parameters": sum(p.numel() for p in model.parameters())}
    return model, report


def save(model: PointDenoiser, spec: TeacherSpec, report: dict, directory: Path) -> Path:
    """The teacher as a point model folder (`save_point_model`) with its manifest."""
    processor = PointModel(dict(training_scheduler().config), WORLDS[spec.world]())
    return builds.publish(directory, lambda staging: save_point_model(model, processor, staging), MANIFEST,
                          {"name": spec.name, "spec": asdict(spec), "spec_hash": spec.spec_hash(), **report})


def cache_directory(spec: TeacherSpec) -> Path:
    return cache_root() / f"{spec.name}-{spec.spec_hash()}"


def model_dir(name: str = "gaussians2d-teacher") -> Path:
    """The user-cache build of `name` (trained when missing or failing verification)."""
    known = specs()
    if name not in known:
        raise ValueError(f"unknown pocket 2-D diffusion model {name!r}; known: {', '.join(known)}")
    return builds.cached(cache_directory(known[name]), MANIFEST, lambda target: _build(name, target, log=None))


def _build(name: str, target: Path, log=print) -> dict:
    spec = specs()[name]
    model, report = train(spec, log=log)
    save(model, spec, report, target)
    return report


def load(directory: Path) -> tuple[PointDenoiser, dict, Mixture]:
    """(denoiser, scheduler config, world) of a saved point model."""
    model, processor = load_point_model(directory)
    return model, processor.scheduler_config, processor.world


for _name in FULL_SPECS:  # `pocket:<name>` references resolve here
    POCKET_MODELS.register(_name, family="diffusion-2d", summary="pocket 2-D diffusion teacher (a diffusers point "
                           "denoiser on a 16-mode Gaussian grid" + (", half its training labels random)"
                                                                    if FULL_SPECS[_name].label_noise else ")"))(model_dir)
