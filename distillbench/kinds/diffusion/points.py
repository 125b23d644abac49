"""A diffusion model of points in the plane (or any low dimension): a diffusers model, so it saves and loads
with ``save_pretrained`` / ``from_pretrained`` like a UNet, and samples with diffusers' schedulers.

diffusers has no network for vectors (its models are UNets and transformers over images, audio and video),
so `PointDenoiser` is a small residual MLP written as a diffusers ``ModelMixin`` with a registered config. It
is conditioned on the timestep (diffusers' sinusoidal ``Timesteps`` and ``TimestepEmbedding``) and on a class
label, the pocket analogue of a prompt; label ``classes`` is the empty prompt, for classifier-free guidance.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch
from diffusers import (ConfigMixin, DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler,
                       LCMScheduler, ModelMixin)
from diffusers.configuration_utils import register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from scipy.special import logsumexp
from torch import nn

from distillbench.core.models import parse_model_ref, resolve_path

WORLD = "world.json"  # a point model folder: denoiser/ (the model), scheduler/ (its training schedule), world.json
HYBRID = "hybrid.json"  # a hybrid's folder also holds base/ (the base model) and this: its base steps and guidance
ROUTER = "router.json"  # a routed model's folder holds students/<k>/ (no denoiser/) and this: its student count
PHASES = "phases.json"  # a phased model's folder holds experts/<k>/ (no denoiser/) and this: its phase boundaries
FLOW_MAP = "flowmap"  # a flow-map model's folder holds flowmap/ (no denoiser/): TwinFlow's any-step network


def mixture_log_density(points: np.ndarray, means: np.ndarray, weights: np.ndarray, std: float) -> np.ndarray:
    """log p(x) under an isotropic Gaussian mixture with one standard deviation `std`."""
    dimension = points.shape[1]
    squared = ((points[:, None, :] - means[None, :, :]) ** 2).sum(axis=-1)
    log_normal = -0.5 * squared / std**2 - dimension * np.log(std) - 0.5 * dimension * np.log(2 * np.pi)
    return logsumexp(log_normal + np.log(np.asarray(weights))[None, :], axis=1)


@dataclass(frozen=True)
class Mixture:
    """An isotropic Gaussian mixture in the plane, the target of a point model: mode means, one standard
    deviation, weights, each mode's class (the pocket analogue of a prompt), and the scale models see
    points divided by."""

    means: tuple[tuple[float, float], ...]
    std: float
    weights: tuple[float, ...]
    classes: tuple[int, ...]
    scale: float = 1.0

    @property
    def class_count(self) -> int:
        return max(self.classes) + 1

    def sample(self, n: int, seed: int, class_label: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """`n` points and their modes (of class `class_label` only, its modes reweighted, when given)."""
        rng = np.random.default_rng(seed)
        weights = np.asarray(self.weights, dtype=float)
        if class_label is not None:
            weights = weights * (np.asarray(self.classes) == class_label)
        modes = rng.choice(len(self.means), size=n, p=weights / weights.sum())
        points = np.asarray(self.means)[modes] + self.std * rng.standard_normal((n, 2))
        return points, modes

    def given(self, class_label: int) -> "Mixture":
        """The world given a prompt: the modes of class `class_label`, their weights renormalised."""
        chosen = [index for index, label in enumerate(self.classes) if label == class_label]
        total = sum(self.weights[index] for index in chosen)
        return Mixture(tuple(self.means[index] for index in chosen), self.std,
                       tuple(self.weights[index] / total for index in chosen), (class_label,) * len(chosen), self.scale)

    def log_density(self, points: np.ndarray) -> np.ndarray:
        return mixture_log_density(points, np.asarray(self.means), np.asarray(self.weights), self.std)

    @classmethod
    def from_json(cls, data: dict) -> "Mixture":
        return cls(tuple(tuple(mean) for mean in data["means"]), data["std"], tuple(data["weights"]),
                   tuple(data["classes"]), data.get("scale", 1.0))


@dataclass
class PointModel:
    """What a point model folder holds besides the denoiser: its training schedule and its world."""

    scheduler_config: dict
    world: Mixture


def save_point_model(model: PointNetwork, processor: PointModel,
                     directory: Path) -> None:
    """A point model folder: its networks (``save_pretrained``, safetensors), its scheduler and its world."""
    directory = Path(directory)
    _save_networks(model, directory)
    DDPMScheduler.from_config(processor.scheduler_config).save_pretrained(directory / "scheduler")
    (directory / WORLD).write_text(json.dumps(asdict(processor.world)) + "\n")


def _save_networks(model, directory: Path) -> None:
    """The denoiser in denoiser/; a routed model's students in students/<k>/ with router.json; a phased model's
    experts in experts/<k>/ with phases.json; a hybrid's base in base/ with hybrid.json, beside its distilled
    model's own layout."""
    if isinstance(model, HybridDenoiser):
        model.base.save_pretrained(directory / "base", safe_serialization=True)
        (directory / HYBRID).write_text(json.dumps({"base_steps": model.base_steps,
                                                    "base_guidance": model.base_guidance}) + "\n")
        _save_networks(model.distilled, directory)
    elif isinstance(model, RoutedDenoiser):
        for index, student in enumerate(model.students):
            student.save_pretrained(directory / "students" / str(index), safe_serialization=True)
        (directory / ROUTER).write_text(json.dumps({"students": len(model.students)}) + "\n")
    elif isinstance(model, FlowMapDenoiser):
        model.save_pretrained(directory / FLOW_MAP, safe_serialization=True)
    elif isinstance(model, PhasedDenoiser):
        for index, expert in enumerate(model.experts):
            expert.save_pretrained(directory / "experts" / str(index), safe_serialization=True)
        (directory / PHASES).write_text(json.dumps({"boundaries": model.boundaries}) + "\n")
    else:
        model.save_pretrained(directory / "denoiser", safe_serialization=True)


def load_point_model(directory: Path) -> tuple[PointNetwork, PointModel]:
    """(its networks, its schedule and world) of a point model folder (`save_point_model`'s layouts)."""
    directory = Path(directory)
    if (directory / ROUTER).is_file():
        count = json.loads((directory / ROUTER).read_text())["students"]
        model = RoutedDenoiser([PointDenoiser.from_pretrained(directory / "students" / str(index)).eval()
                                for index in range(count)])
    elif (directory / FLOW_MAP).is_dir():
        model = FlowMapDenoiser.from_pretrained(directory / FLOW_MAP).eval()
    elif (directory / PHASES).is_file():
        boundaries = json.loads((directory / PHASES).read_text())["boundaries"]
        model = PhasedDenoiser([PointDenoiser.from_pretrained(directory / "experts" / str(index)).eval()
                                for index in range(len(boundaries) + 1)], boundaries)
    else:
        model = PointDenoiser.from_pretrained(directory / "denoiser").eval()
    if (directory / HYBRID).is_file():
        options = json.loads((directory / HYBRID).read_text())
        model = HybridDenoiser(PointDenoiser.from_pretrained(directory / "base").eval(), model, **options)
    config = dict(DDPMScheduler.from_pretrained(directory / "scheduler").config)
    return model, PointModel(config, Mixture.from_json(json.loads((directory / WORLD).read_text())))


def model_directory(ref: str) -> Path:
    """The folder of a point model reference (a pocket model is built on first use)."""
    parsed = parse_model_ref(ref)
    return Path(resolve_path(parsed)) if parsed.backend == "pocket" else Path(ref)


def is_point_model(directory: Path) -> bool:
    directory = Path(directory)
    return (directory / WORLD).is_file() and ((directory / "denoiser").is_dir() or (directory / ROUTER).is_file()
                                              or (directory / PHASES).is_file() or (directory / FLOW_MAP).is_dir())


def add_residual_mlp(module: nn.Module, dimension: int, classes: int, hidden: int, layers: int, embedding: int,
                     target_time: bool = False) -> None:
    """The layers every point network has, set on `module` under the names its checkpoints use, in the order
    that draws their initial weights: a sinusoidal timestep embedding (and one of the target time, for a flow
    map), a class embedding (the last label: no class, the empty prompt), the input projection, `layers`
    residual blocks and the output head."""
    module.time_projection = Timesteps(embedding, flip_sin_to_cos=True, downscale_freq_shift=0)
    module.time_embedding = TimestepEmbedding(embedding, hidden)
    if target_time:
        module.target_embedding = TimestepEmbedding(embedding, hidden)
    module.class_embedding = nn.Embedding(classes + 1, hidden)
    module.input = nn.Linear(dimension, hidden)
    module.blocks = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                                nn.Linear(hidden, hidden)) for _ in range(layers))
    module.output = nn.Sequential(nn.SiLU(), nn.Linear(hidden, dimension))


class PointDenoiser(ModelMixin, ConfigMixin):
    """ε(x_t, t, class) for points x_t of `dimension` coordinates."""

    @register_to_config
    def __init__(self, dimension: int = 2, classes: int = 0, hidden: int = 256, layers: int = 3,
                 embedding: int = 64):
        super().__init__()
        add_residual_mlp(self, dimension, classes, hidden, layers, embedding)

    @property
    def null_class(self) -> int:
        return self.config.classes

    def step_model(self, index: int, guidance: float) -> tuple["PointDenoiser", float]:
        """The network sampling step `index` evaluates, and its guidance: this one at every step (a hybrid
        hands its first steps to its base)."""
        return self, guidance

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, class_labels: torch.Tensor | None = None
                ) -> torch.Tensor:
        return self.output(self.features(sample, timestep, class_labels))

    def features(self, sample: torch.Tensor, timestep: torch.Tensor, class_labels: torch.Tensor | None = None
                 ) -> torch.Tensor:
        """The last hidden state (`hidden` wide), what a GAN head on a frozen denoiser reads (the analogue of
        a UNet's bottleneck features)."""
        timestep = torch.as_tensor(timestep, device=sample.device).expand(sample.shape[0])
        if class_labels is None:
            class_labels = torch.full((sample.shape[0],), self.null_class, device=sample.device)
        condition = self.time_embedding(self.time_projection(timestep).to(sample.dtype))
        hidden = self.input(sample) + condition + self.class_embedding(class_labels)
        for block in self.blocks:
            hidden = hidden + block(hidden)
        return hidden


class FlowMapDenoiser(ModelMixin, ConfigMixin):
    """An any-step flow map F(x_t, t, s, class) on the linear path x_t = t·z + (1 − t)·x (noise at t = 1): the
    average velocity over [s, t], so that x_s = x_t − (t − s)·F (TwinFlow's network). The time t is signed:
    t < 0 is the twin trajectory towards the model's own samples. One step is x = z − F(z, 1, 0)."""

    @register_to_config
    def __init__(self, dimension: int = 2, classes: int = 0, hidden: int = 256, layers: int = 3,
                 embedding: int = 64):
        super().__init__()
        add_residual_mlp(self, dimension, classes, hidden, layers, embedding, target_time=True)

    @property
    def null_class(self) -> int:
        return self.config.classes

    def forward(self, sample: torch.Tensor, time, target, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        count = sample.shape[0]
        time, target = (torch.as_tensor(value, dtype=sample.dtype, device=sample.device).expand(count)
                        for value in (time, target))
        if class_labels is None:
            class_labels = torch.full((count,), self.null_class, device=sample.device)
        # times in [−1, 1] are scaled as diffusion timesteps are (to 1,000) for the sinusoidal projection
        hidden = (self.input(sample) + self.time_embedding(self.time_projection(1000 * time).to(sample.dtype))
                  + self.target_embedding(self.time_projection(1000 * target).to(sample.dtype))
                  + self.class_embedding(class_labels))
        for block in self.blocks:
            hidden = hidden + block(hidden)
        return self.output(hidden)

    def guided(self, sample: torch.Tensor, time, target, class_labels: torch.Tensor | None,
               guidance: float) -> torch.Tensor:
        """F with classifier-free guidance (`guided`): F_u + w (F_c − F_u); w = 1 (or no class): F_c alone."""
        return guided(lambda x, t, labels: self(x, t, target, labels), sample, time, class_labels, guidance)

    @torch.no_grad()
    def solve(self, noise: torch.Tensor, steps: int, class_labels: torch.Tensor | None = None,
              guidance: float = 1.0) -> torch.Tensor:
        """`steps` jumps of the flow map over evenly spaced times from 1 to 0 (its own sampler: deterministic)."""
        times = torch.linspace(1.0, 0.0, steps + 1)
        sample = noise
        for start, end in zip(times[:-1], times[1:]):
            sample = sample - (start - end) * self.guided(sample, start, end, class_labels, guidance)
        return sample


def route(class_labels: torch.Tensor, classes: int, students: int) -> torch.Tensor:
    """The student each sample goes to: class c to student ⌊c·K/classes⌋ (equal blocks of consecutive classes, as
    MSD splits ImageNet's); the empty prompt, which names no class, to student i mod K by its position i."""
    position = torch.arange(len(class_labels), device=class_labels.device) % students
    return torch.where(class_labels >= classes, position, class_labels * students // classes)


def by_owner(networks, owners: torch.Tensor, sample: torch.Tensor, timestep: torch.Tensor,
             class_labels: torch.Tensor | None) -> torch.Tensor:
    """Each sample denoised by the network `owners` names for it (one evaluation per sample)."""
    output = torch.empty_like(sample)
    for index, network in enumerate(networks):
        rows = owners == index
        if rows.any():
            output[rows] = network(sample[rows], timestep[rows], None if class_labels is None else class_labels[rows])
    return output


class RoutedDenoiser(nn.Module):
    """Several students, each owning a block of the classes (MSD): a sample is denoised by its class's student
    (`route`), so one network evaluation per sample, as with one student."""

    def __init__(self, students: list[PointDenoiser]):
        super().__init__()
        self.students = nn.ModuleList(students)
        self.config = students[0].config

    def step_model(self, index: int, guidance: float) -> tuple["RoutedDenoiser", float]:
        return self, guidance

    def forward(self, sample: torch.Tensor, timestep, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        if class_labels is None:
            class_labels = torch.full((sample.shape[0],), self.config.classes, device=sample.device)
        timestep = torch.as_tensor(timestep, device=sample.device).expand(sample.shape[0])
        return by_owner(self.students, route(class_labels, self.config.classes, len(self.students)), sample,
                        timestep, class_labels)


class PhasedDenoiser(nn.Module):
    """Phased DMD's experts, one per phase of the timesteps (a mixture of experts by noise level, as Wan2.2's
    high- and low-noise experts): expert p denoises the timesteps t with boundaries[p] < t ≤ boundaries[p − 1]
    (the first above boundaries[0], the last at or below the last boundary), so one network evaluation per step."""

    def __init__(self, experts: list[PointDenoiser], boundaries: list[int]):
        super().__init__()
        if len(boundaries) != len(experts) - 1 or list(boundaries) != sorted(boundaries, reverse=True):
            raise ValueError(f"{len(experts)} experts need {len(experts) - 1} descending boundaries, not {boundaries}")
        self.experts, self.boundaries = nn.ModuleList(experts), [int(b) for b in boundaries]
        self.config = experts[0].config

    def step_model(self, index: int, guidance: float) -> tuple["PhasedDenoiser", float]:
        return self, guidance

    def phase(self, timestep: torch.Tensor) -> torch.Tensor:
        """Each timestep's phase: how many boundaries lie at or above it."""
        return sum((timestep <= boundary).long() for boundary in self.boundaries)

    def forward(self, sample: torch.Tensor, timestep, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        timestep = torch.as_tensor(timestep, device=sample.device).expand(sample.shape[0])
        return by_owner(self.experts, self.phase(timestep), sample, timestep, class_labels)


class HybridDenoiser(nn.Module):
    """Hybrid inference (diversity distillation): the base model takes the first `base_steps` sampling steps
    (with its own guidance), the distilled model the rest, on one sampler and one schedule."""

    def __init__(self, base: PointDenoiser, distilled: PointDenoiser, base_steps: int, base_guidance: float = 1.0):
        super().__init__()
        self.base, self.distilled = base, distilled
        self.base_steps, self.base_guidance = base_steps, base_guidance
        self.config = distilled.config

    def step_model(self, index: int, guidance: float) -> tuple[PointDenoiser, float]:
        """The network sampling step `index` (0-based) evaluates, and its guidance."""
        return (self.base, self.base_guidance) if index < self.base_steps else (self.distilled, guidance)


# What a point model folder loads as (`load_point_model`) and what the samplers take
PointNetwork = Union[PointDenoiser, HybridDenoiser, RoutedDenoiser, PhasedDenoiser, FlowMapDenoiser]


def guided(model: PointDenoiser, sample: torch.Tensor, timestep, class_labels: torch.Tensor | None,
           guidance: float) -> torch.Tensor:
    """The model's output with classifier-free guidance: ε_u + w (ε_c − ε_u); w = 1 (or no class): ε_c alone."""
    if class_labels is None or guidance == 1.0:
        return model(sample, timestep, class_labels)
    unconditional = model(sample, timestep, None)
    return unconditional + guidance * (model(sample, timestep, class_labels) - unconditional)


def _trailing(scheduler_class):
    """A solver of `scheduler_class` on `steps` timesteps with trailing spacing: the first step starts at the
    last training timestep, so 1 step starts from pure noise (leading spacing would start 1-step sampling at
    t = 0; Lin et al. 2023, arXiv:2305.08891, table 2)."""
    def make(scheduler_config: dict, steps: int):
        scheduler = scheduler_class.from_config(scheduler_config, timestep_spacing="trailing")
        scheduler.set_timesteps(steps)
        return scheduler
    return make


def _consistency(scheduler_config: dict, steps: int) -> LCMScheduler:
    """diffusers' multistep consistency sampler (LCM's, which DMD2 and Hyper-SD sample their multi-step students
    with): x̂₀ at each timestep, re-noised with fresh noise to the next. Its timesteps are `steps` evenly spaced
    ones ending at the last training timestep ([999, 749, 499, 249] for 4 of 1,000), the schedule a multi-step
    generator trains on (`generator_timesteps`)."""
    scheduler = LCMScheduler.from_config(scheduler_config, original_inference_steps=steps)
    scheduler.set_timesteps(steps)
    return scheduler


# The samplers a point model is scored with: diffusers' deterministic solvers of the probability-flow ODE, and
# the consistency sampler (stochastic: its re-noising draws from the sampling seed's generator).
SAMPLERS = {"ddim": _trailing(DDIMScheduler), "dpm-solver++": _trailing(DPMSolverMultistepScheduler),
            "euler": _trailing(EulerDiscreteScheduler), "lcm": _consistency}


def generator_timesteps(scheduler_config: dict, steps: int) -> torch.Tensor:
    """The timesteps a `steps`-step generator denoises at, those of the consistency sampler that scores it."""
    return _consistency(scheduler_config, steps).timesteps


@torch.no_grad()
def sample_points(model: PointNetwork, scheduler_config: dict, n: int, steps: int, seed: int,
                  class_labels: torch.Tensor | None = None, guidance: float = 1.0, sampler: str = "ddim"
                  ) -> torch.Tensor:
    """`n` points drawn with `sampler` (DDIM with η = 0 by default) in `steps` steps from seeded Gaussian noise;
    1 step is the model's one-shot prediction of x_0 from pure noise."""
    noise = torch.randn((n, model.config.dimension), generator=torch.Generator().manual_seed(seed))
    return solve(model, scheduler_config, noise, steps, class_labels, guidance, sampler,
                 generator=torch.Generator().manual_seed(seed + 1))


@torch.no_grad()
def solve(model: PointNetwork, scheduler_config: dict, noise: torch.Tensor, steps: int,
          class_labels: torch.Tensor | None = None, guidance: float = 1.0, sampler: str = "ddim",
          generator: torch.Generator | None = None) -> torch.Tensor:
    """The model's solution from `noise` (unit variance) in `steps` steps of `sampler` (a key of SAMPLERS); a
    stochastic sampler draws its fresh noise from `generator`."""
    if isinstance(model, FlowMapDenoiser):  # a flow map jumps along its own path, whatever the sampler
        return model.solve(noise, steps, class_labels, guidance)
    scheduler = SAMPLERS[sampler](scheduler_config, steps)
    sample = noise * scheduler.init_noise_sigma  # the σ-parametrised solvers (Euler) start from σ_max·noise
    for index, timestep in enumerate(scheduler.timesteps):
        network, scale = model.step_model(index, guidance)
        output = guided(network, scheduler.scale_model_input(sample, timestep), timestep, class_labels, scale)
        sample = scheduler.step(output, timestep, sample, generator=generator).prev_sample
    return sample
