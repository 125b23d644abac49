"""What the score-distillation methods share (DMD, DMD2, DisBack, SiD, f-distill): a generator (the student,
its x̂₀ from pure noise at the last training timestep, or for DMD2's multi-step generators at one of its
timesteps) trained against the frozen teacher and a fake-score critic, a trainable copy of the student
fitted to the generator's own samples by denoising score matching every step.

`CriticDistillation.loss` returns the critic's term every step and the generator's term (the subclass's
`generator_loss`) every `generator_every` steps, so between them the generator gets no gradient and the
optimiser leaves its parameters and moments alone (the two-time-scale update rule of DMD2).

With `gan_generator_weight` > 0 the module also trains a GAN head (DMD2's GAN term; f-distill's density
ratio). As in NVlabs/FastGen (34f30e8, ``DMD2Model``), the head reads the frozen teacher's features at
re-noised samples (DMD2's own code puts it on the fake-score network's bottleneck) and is trained every step
with the critic on the non-saturating loss, real samples (the prompt pool's data points) against the
generator's:

    L_D = mean softplus(D(f(x̃_t))) + mean softplus(−D(f(x_t^real)))     (both re-noised, t as the generator's)
    L_G += w_GAN · mean softplus(−D(f(x_t)))                            (D held fixed; gradient through f to x)
"""

from __future__ import annotations

import contextlib
import copy
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from distillbench.kinds.diffusion.points import generator_timesteps, guided
from distillbench.methods.base import Method


def x0_and_noise(scheduler, sample: torch.Tensor, output: torch.Tensor, timesteps: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(x̂₀, ε̂) from a model's `output` at x_t = α_t x₀ + σ_t ε (α_t = √ᾱ_t, σ_t = √(1 − ᾱ_t)), read by the
    scheduler's ``prediction_type``: v (x̂₀ = α x_t − σ v, ε̂ = σ x_t + α v; the pocket teachers), ε (SD1.5:
    x̂₀ = (x_t − σ ε)/α) or the sample itself (ε̂ = (x_t − α x̂₀)/σ), as diffusers' DDIM step reads them."""
    alphas = scheduler.alphas_cumprod.to(sample.device, sample.dtype)[timesteps]
    alpha, sigma = per_sample(alphas.sqrt(), sample), per_sample((1 - alphas).sqrt(), sample)
    kind = scheduler.config.prediction_type
    if kind == "v_prediction":
        return alpha * sample - sigma * output, sigma * sample + alpha * output
    if kind == "epsilon":
        return (sample - sigma * output) / alpha, output
    if kind == "sample":
        return output, (sample - alpha * output) / sigma
    raise ValueError(f"prediction_type {kind!r}: the methods read v_prediction, epsilon or sample")


def x0_from_output(scheduler, sample: torch.Tensor, output: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """x̂₀ from a model's output (`x0_and_noise`)."""
    return x0_and_noise(scheduler, sample, output, timesteps)[0]


def denoising_target(scheduler, clean: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """What a model of the scheduler's ``prediction_type`` is trained to output at x_t: v, ε or x₀."""
    kind = scheduler.config.prediction_type
    if kind == "v_prediction":
        return scheduler.get_velocity(clean, noise, timesteps)
    if kind == "sample":
        return clean
    return noise


def per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """One value per sample, shaped to broadcast over `like`'s other dimensions ([n] → [n, 1, …]); real values in
    `like`'s dtype, masks kept as they are."""
    dtype = like.dtype if values.is_floating_point() else values.dtype
    return values.to(like.device, dtype).view((-1,) + (1,) * (like.dim() - 1))


def one_step_sample(generator: nn.Module, scheduler, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The one-step generator's sample: its x̂₀ from pure `noise` at the last training timestep."""
    start = torch.full((len(noise),), scheduler.config.num_train_timesteps - 1, device=noise.device)
    return x0_from_output(scheduler, noise, generator(noise, start, labels), start)


def critic_denoising_loss(critic: nn.Module, scheduler, sample: torch.Tensor, labels: torch.Tensor,
                          generator: torch.Generator) -> torch.Tensor:
    """The critic's denoising score matching on the generator's (detached) samples, in its own target (v, ε)."""
    timesteps = torch.randint(scheduler.config.num_train_timesteps, (len(sample),), generator=generator)
    noise = torch.randn(sample.shape, generator=generator)
    timesteps, noise = timesteps.to(sample.device), noise.to(sample.device)
    prediction = critic(scheduler.add_noise(sample, noise, timesteps), timesteps, labels)
    return F.mse_loss(prediction, denoising_target(scheduler, sample, noise, timesteps))


def distribution_matching_loss(sample: torch.Tensor, real_x0: torch.Tensor, fake_x0: torch.Tensor,
                               weights: torch.Tensor | None = None) -> torch.Tensor:
    """DMD's generator loss: its gradient with respect to `sample` is g / N, g the normalised score difference
    (fake − real) / mean_dims |x − real|, times a per-sample weight where given (f-distill's h(r))."""
    with torch.no_grad():
        normaliser = (sample - real_x0).abs().mean(dim=tuple(range(1, sample.dim())), keepdim=True)
        gradient = torch.nan_to_num((fake_x0 - real_x0) / normaliser)
        if weights is not None:
            gradient = gradient * weights.view((-1,) + (1,) * (sample.dim() - 1))
    return 0.5 * F.mse_loss(sample, (sample - gradient).detach())


def distribution_matching_at(critic: nn.Module, teacher: nn.Module, scheduler, sample: torch.Tensor,
                             timesteps: torch.Tensor, noise: torch.Tensor, labels, real_guidance: float = 1.0,
                             fake_guidance: float = 1.0) -> torch.Tensor:
    """`distribution_matching_loss` of `sample` re-noised to `timesteps` with `noise`: the teacher's x̂₀ (at
    `real_guidance`) and the critic's (at `fake_guidance`) there, without gradient (DMD, SNOOPI's VSD, Phased
    DMD's and Flash-DMD's matching terms)."""
    with torch.no_grad():
        noisy = scheduler.add_noise(sample.detach(), noise, timesteps)
        fake = x0_from_output(scheduler, noisy, guided(critic, noisy, timesteps, labels, fake_guidance), timesteps)
        real = x0_from_output(scheduler, noisy, guided(teacher, noisy, timesteps, labels, real_guidance), timesteps)
    return distribution_matching_loss(sample, real, fake)


def gan_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating GAN loss of the generator: mean softplus(−D(fake))."""
    return F.softplus(-fake_logits).mean()


def gan_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's: mean softplus(D(fake)) + mean softplus(−D(real))."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


@contextlib.contextmanager
def frozen_parameters(module: nn.Module):
    """`module`'s parameters take no gradient while open (gradients still flow through its inputs)."""
    flags = [parameter.requires_grad for parameter in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in zip(module.parameters(), flags):
            parameter.requires_grad_(flag)


class DiscriminatorHead(nn.Module):
    """A GAN head on a denoiser's features: one logit per sample (FastGen's heads are small convolutional
    stacks on a UNet's features; a vector's features take a two-layer MLP)."""

    def __init__(self, width: int):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class GeneratorAndCritic(nn.Module):
    """What a score-distillation method trains: the generator (the student, saved at the end), its critic and,
    for a GAN term, a head on the (frozen) teacher's features, as wide as the student's (the teacher's copy)."""

    def __init__(self, generator: nn.Module, discriminator: bool = False):
        super().__init__()
        self.generator = generator
        self.critic = copy.deepcopy(generator)
        self.discriminator = DiscriminatorHead(generator.config.hidden) if discriminator else None


class GeneratorsAndCritics(nn.Module):
    """Several generator–critic pairs (`parts`), each from a copy of the student: MSD's students, Phased DMD's
    experts."""

    def __init__(self, student: nn.Module, count: int, discriminator: bool = False):
        super().__init__()
        self.parts = nn.ModuleList(GeneratorAndCritic(copy.deepcopy(student), discriminator) for _ in range(count))


class CriticDistillation(Method):
    """A generator against the teacher and a fake-score critic; subclasses give `generator_loss`."""

    data_kind: ClassVar[str] = "diffusion"
    normalize_by: ClassVar[str] = "examples"
    generator_every: int = 1  # a dataclass field in the subclasses that tune it
    real_guidance: float = 1.0

    gan_generator_weight: float = 0.0  # dataclass fields in the subclasses with a GAN term (0: none)
    gan_discriminator_weight: float = 1e-2

    def training_module(self, student: nn.Module) -> nn.Module:
        return GeneratorAndCritic(student, discriminator=self.gan_generator_weight > 0)

    def trained_model(self, module: nn.Module) -> nn.Module:
        return module.generator

    min_timestep: float = 0.02  # dataclass fields in the subclasses: the re-noising range of the generator's loss
    max_timestep: float = 0.98

    generator_steps: int = 1  # dataclass fields in DMD2: a multi-step generator, trained with backward simulation
    backward_simulation: bool = False

    def check(self) -> list[str]:
        problems = [] if self.min_timestep < self.max_timestep else ["min_timestep: below max_timestep"]
        if self.backward_simulation and self.generator_steps == 1:
            problems.append("backward_simulation: needs a multi-step generator (generator_steps > 1)")
        return problems

    def generator_sample(self, generator: nn.Module, batch: dict) -> torch.Tensor:
        """The generator's x̂₀ that its loss is taken on. A one-step generator's is from the batch's pure noise. A
        `generator_steps`-step generator (DMD2's multi-step students) denoises at one of its timesteps t_i, i drawn
        per batch (DMD2 draws it once per step for all ranks), from the state `generator_state` gives."""
        scheduler, labels, noise = batch["scheduler"], batch["class_labels"], batch["noise"]
        if self.generator_steps == 1:
            return one_step_sample(generator, scheduler, noise, labels)
        timesteps = generator_timesteps(dict(scheduler.config), self.generator_steps).to(noise.device)
        index = int(torch.randint(self.generator_steps, (), generator=batch["generator"]))
        state = self.generator_state(generator, batch, timesteps, index)
        timestep = timesteps[index].expand(len(noise))
        return x0_from_output(scheduler, state, generator(state, timestep, labels), timestep)

    def generator_state(self, generator: nn.Module, batch: dict, timesteps: torch.Tensor, index: int) -> torch.Tensor:
        """The state x_{t_i} the generator denoises at its i-th timestep: pure noise at the first; with backward
        simulation, where its own first i steps take the batch's noise (no gradient; each x̂₀ re-noised with fresh
        noise, as its consistency sampler does), so it trains on the states it reaches when sampling; otherwise a
        data point of the pool noised to t_i (DMD2 without backward simulation noises real images)."""
        scheduler, labels, state = batch["scheduler"], batch["class_labels"], batch["noise"]
        count = len(state)

        def fresh_noise() -> torch.Tensor:
            return torch.randn(state.shape, generator=batch["generator"]).to(state.device)

        if index == 0:
            return state
        if not self.backward_simulation:
            return scheduler.add_noise(batch["clean"], fresh_noise(), timesteps[index].expand(count))
        with torch.no_grad():
            for step in range(index):
                timestep = timesteps[step].expand(count)
                denoised = x0_from_output(scheduler, state, generator(state, timestep, labels), timestep)
                state = scheduler.add_noise(denoised, fresh_noise(), timesteps[step + 1].expand(count))
        return state

    def renoising(self, scheduler, sample: torch.Tensor, generator: torch.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """(timesteps, noise) re-noising the generator's samples for its loss: t ~ U[min_timestep·T, max_timestep·T)."""
        total = scheduler.config.num_train_timesteps
        timesteps = torch.randint(int(self.min_timestep * total), int(self.max_timestep * total), (len(sample),),
                                  generator=generator)
        noise = torch.randn(sample.shape, generator=generator)
        return timesteps.to(sample.device), noise.to(sample.device)

    def generator_step(self, step: int) -> bool:
        return step % self.generator_every == 0

    def teacher_forwards(self, batch: dict) -> int:
        """Teacher evaluations a batch costs: one per sample (two with guidance) on generator steps, and with
        a GAN term the features of two samples per sample every step (real, fake) and one more on generator
        steps."""
        samples = len(batch["class_labels"])
        gan = self.gan_generator_weight > 0
        if not self.generator_step(batch["step"]):
            return 2 * samples * gan
        return samples * ((2 if self.real_guidance != 1.0 else 1) + 3 * gan)

    def loss(self, student: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        scheduler, labels, generator = batch["scheduler"], batch["class_labels"], batch["generator"]
        update_generator = self.generator_step(batch["step"])
        with torch.set_grad_enabled(update_generator and torch.is_grad_enabled()):
            sample = self.generator_sample(student.generator, batch)
        terms = {"critic": critic_denoising_loss(student.critic, scheduler, sample.detach(), self.critic_labels(labels),
                                                 generator)}
        if student.discriminator is not None:
            terms["discriminator"] = self.gan_discriminator_weight * self.discriminator_loss(
                student.discriminator, batch["teacher"], scheduler, sample.detach(), batch["clean"], labels, generator)
        if update_generator:
            terms.update(self.generator_terms(student, batch, sample))
        return terms

    def critic_labels(self, labels: torch.Tensor) -> torch.Tensor | None:
        """The prompts the critic's denoising loss sees (None: the empty prompt; SiD's Zero-CFG)."""
        return labels

    def discriminator_loss(self, head, teacher, scheduler, fake, real, labels, generator) -> torch.Tensor:
        """The GAN head's loss: real points against the generator's, each re-noised with its own draw."""
        def logits(points: torch.Tensor) -> torch.Tensor:
            timesteps, noise = self.renoising(scheduler, points, generator)
            with torch.no_grad():
                features = teacher.features(scheduler.add_noise(points, noise, timesteps), timesteps, labels)
            return head(features)

        return gan_discriminator_loss(logits(real), logits(fake))

    def generator_terms(self, module, batch: dict, sample: torch.Tensor) -> dict[str, torch.Tensor]:
        """The generator's loss terms on its one-step `sample` of the batch's noise: the method's own and, with a
        GAN head, its weighted GAN term."""
        teacher, scheduler, labels, generator = batch["teacher"], batch["scheduler"], batch["class_labels"], batch["generator"]
        real = self.real_score_model(module, batch)
        terms = {self.generator_term: self.generator_loss(module.critic, real, scheduler, sample, labels, generator)}
        if module.discriminator is not None:
            timesteps, noise = self.renoising(scheduler, sample, generator)
            logits = self.discriminator_logits(module.discriminator, teacher, scheduler.add_noise(sample, noise, timesteps),
                                               timesteps, labels)
            terms["gan"] = self.gan_generator_weight * gan_generator_loss(logits)
        return terms

    @staticmethod
    def discriminator_logits(head, teacher, noisy, timesteps, labels) -> torch.Tensor:
        """D(f_teacher(x_t)) with the head held fixed: the generator's gradient flows through the features."""
        with frozen_parameters(head):
            return head(teacher.features(noisy, timesteps, labels))

    def real_score_model(self, module, batch: dict) -> nn.Module:
        """The model whose score the generator is pulled toward: the frozen teacher (DisBack's intermediate
        targets replace it)."""
        return batch["teacher"]

    generator_term: ClassVar[str] = "generator"  # the generator's loss term, as logged

    def generator_loss(self, critic, teacher, scheduler, sample, labels, generator) -> torch.Tensor:
        """The generator's loss on its `sample` (with gradient), the critic and the real score's model; a
        method whose terms share draws with its GAN head overrides `generator_terms` instead (f-distill)."""
        raise NotImplementedError(f"{type(self).__name__}: give generator_loss or generator_terms")
