"""DMD2 (methods/diffusion/dmd2.py): its loss against a naive form, its gradients, the two time scales, and a
cell of the diffusion kind end to end on the 2-D pocket world."""

import math

import pytest
import torch
from diffusers import DDPMScheduler

from tests.diffusion.conftest import run_points
from distillbench.cli.main import main
from distillbench.kinds.diffusion.points import PointDenoiser, load_point_model, solve
from distillbench.methods.diffusion.critic import (distribution_matching_loss, gan_discriminator_loss, gan_generator_loss,
                                                   x0_from_output)
from distillbench.methods.diffusion.dmd2 import DMD2

SCHEDULER = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")


def _naive_matching_loss(sample, real, fake):
    """½·mean((x − sg(x − g))²), g per sample from loops: (fake − real) / mean |x − real|."""
    total = 0.0
    for x, r, f in zip(sample, real, fake):
        normaliser = sum(abs(float(a) - float(b)) for a, b in zip(x, r)) / len(x)
        for a, rr, ff in zip(x, r, f):
            g = (float(ff) - float(rr)) / normaliser
            total += 0.5 * (a - (float(a) - g)) ** 2
    return total / sample.numel()


def test_the_matching_loss_matches_its_naive_form_and_its_gradient_is_the_normalised_difference():
    torch.manual_seed(0)
    sample, real, fake = torch.randn(5, 2, requires_grad=True), torch.randn(5, 2), torch.randn(5, 2)
    loss = distribution_matching_loss(sample, real, fake)
    assert loss.item() == pytest.approx(float(_naive_matching_loss(sample.detach(), real, fake)), rel=1e-5)
    (gradient,) = torch.autograd.grad(loss, sample)
    normaliser = (sample.detach() - real).abs().mean(dim=1, keepdim=True)
    assert torch.allclose(gradient, (fake - real) / normaliser / sample.numel())
    # a sample on the real score's prediction (a zero normaliser) gets no NaN: nan_to_num, as the authors'
    sample = real.clone().requires_grad_()
    assert torch.isfinite(torch.autograd.grad(distribution_matching_loss(sample, real, fake), sample)[0]).all()


def test_x0_from_output_inverts_the_schedule():
    clean, noise, timesteps = torch.randn(6, 2), torch.randn(6, 2), torch.tensor([0, 10, 200, 500, 900, 999])
    noisy = SCHEDULER.add_noise(clean, noise, timesteps)
    velocity = SCHEDULER.get_velocity(clean, noise, timesteps)
    assert torch.allclose(x0_from_output(SCHEDULER, noisy, velocity, timesteps), clean, atol=1e-5)


def _batch(step: int, teacher) -> dict:
    return {"class_labels": torch.tensor([0, 1, 4, 4]), "noise": torch.randn(4, 2), "clean": torch.randn(4, 2),
            "step": step, "scheduler": SCHEDULER, "generator": torch.Generator().manual_seed(step), "teacher": teacher}


@pytest.mark.parametrize("guidance", [1.0, 2.0])
def test_the_generator_gets_a_nonzero_gradient_on_its_steps_and_none_between(guidance):
    torch.manual_seed(0)
    teacher = PointDenoiser(classes=4, hidden=16, layers=1).requires_grad_(False)
    method = DMD2(real_guidance=guidance, generator_every=3, gan_generator_weight=0.0)
    # a student (and so a critic, its copy) unlike the teacher: the fake and real scores differ (a critic equal to
    # the teacher, as at DMD2's first step, gives g = 0 until it has fitted the generator's samples)
    module = method.training_module(PointDenoiser(classes=4, hidden=16, layers=1))
    for step, generator_step in ((0, True), (1, False), (3, True)):
        module.zero_grad(set_to_none=True)
        terms = method.loss(module, _batch(step, teacher))
        assert set(terms) == ({"critic", "distribution_matching"} if generator_step else {"critic"})
        sum(terms.values()).backward()
        generator_grads = [p.grad for p in module.generator.parameters()]
        if generator_step:
            assert all(g is not None for g in generator_grads)
            assert sum(float(g.abs().sum()) for g in generator_grads) > 0  # the DistillationDPO caution
        else:
            assert all(g is None for g in generator_grads)  # the optimiser leaves the generator alone
        assert all(p.grad is not None for p in module.critic.parameters())
        assert all(p.grad is None for p in teacher.parameters())
    assert method.teacher_forwards(_batch(0, teacher)) == 4 * (2 if guidance != 1.0 else 1)
    assert method.teacher_forwards(_batch(1, teacher)) == 0


def _naive_rollout(generator, noise, labels, timesteps, draws):
    """A multi-step generator's states from `noise`, by hand: x̂₀ = α x − σ v at each timestep, re-noised to the
    next with the next of `draws` (x = α' x̂₀ + σ' ε), as the consistency sampler does."""
    alphas = SCHEDULER.alphas_cumprod
    states = [noise]
    for index, timestep in enumerate(timesteps[:-1]):
        state, a, a_next = states[-1], alphas[timestep], alphas[timesteps[index + 1]]
        x0 = a.sqrt() * state - (1 - a).sqrt() * generator(state, torch.full((len(state),), timestep), labels)
        states.append(a_next.sqrt() * x0 + (1 - a_next).sqrt() * draws[index])
    return states


@torch.no_grad()
def test_backward_simulation_trains_on_the_states_the_generator_reaches_when_sampled():
    torch.manual_seed(0)
    generator = PointDenoiser(classes=4, hidden=16, layers=1)
    timesteps, batch = [999, 749, 499, 249], _batch(0, None)
    draw = torch.Generator().manual_seed(5)
    draws = [torch.randn(4, 2, generator=draw) for _ in range(3)]  # one draw per re-noising, as the sampler's
    states = _naive_rollout(generator, batch["noise"], batch["class_labels"], timesteps, draws)
    # the consistency sampler that scores a 4-step student reaches the same states (its last step returns x̂₀)
    sampled = solve(generator, {**SCHEDULER.config, "clip_sample": False}, batch["noise"], 4, batch["class_labels"],
                    sampler="lcm", generator=torch.Generator().manual_seed(5))
    alpha = SCHEDULER.alphas_cumprod[249]
    last = alpha.sqrt() * states[3] - (1 - alpha).sqrt() * generator(states[3], torch.full((4,), 249),
                                                                      batch["class_labels"])
    assert torch.allclose(sampled, last, atol=1e-5)
    # the method's state at timestep i: the same rollout with the batch's generator drawing the fresh noise
    method = DMD2(generator_steps=4, backward_simulation=True)
    for index in range(4):
        batch["generator"] = torch.Generator().manual_seed(5)
        state = method.generator_state(generator, batch, torch.tensor(timesteps), index)
        assert torch.allclose(state, states[index], atol=1e-5)
    # without it, a data point of the batch noised to t_i
    batch["generator"] = torch.Generator().manual_seed(5)
    state = DMD2(generator_steps=4).generator_state(generator, batch, torch.tensor(timesteps), 2)
    assert torch.allclose(state, SCHEDULER.add_noise(batch["clean"], draws[0], torch.full((4,), 499)))


@pytest.mark.parametrize("backward_simulation", [False, True])
def test_a_multi_step_generator_gets_its_gradient_through_its_last_step_only(backward_simulation):
    torch.manual_seed(0)
    teacher = PointDenoiser(classes=4, hidden=16, layers=1).requires_grad_(False)
    method = DMD2(generator_steps=4, backward_simulation=backward_simulation, gan_generator_weight=0.0)
    module = method.training_module(PointDenoiser(classes=4, hidden=16, layers=1))
    for step in range(0, 20, 5):  # generator steps: the drawn timestep varies with the batch's generator
        module.zero_grad(set_to_none=True)
        sample = method.generator_sample(module.generator, _batch(step, teacher))
        assert sample.requires_grad
        terms = method.loss(module, _batch(step, teacher))
        terms["distribution_matching"].backward()
        assert sum(float(p.grad.abs().sum()) for p in module.generator.parameters()) > 0  # the DistillationDPO caution
    assert DMD2(backward_simulation=True).check() == [
        "backward_simulation: needs a multi-step generator (generator_steps > 1)"]


def test_the_gan_head_trains_on_every_step_and_the_generator_term_leaves_it_alone():
    torch.manual_seed(0)
    teacher = PointDenoiser(classes=4, hidden=16, layers=1).requires_grad_(False)
    method = DMD2(generator_every=2)  # the paper's GAN weights
    module = method.training_module(PointDenoiser(classes=4, hidden=16, layers=1))
    terms = method.loss(module, _batch(0, teacher))
    assert set(terms) == {"critic", "discriminator", "distribution_matching", "gan"}
    head = list(module.discriminator.parameters())
    assert all(g is None for g in torch.autograd.grad(terms["gan"], head, allow_unused=True, retain_graph=True))
    generator_grads = torch.autograd.grad(terms["gan"], list(module.generator.parameters()), retain_graph=True)
    assert sum(float(g.abs().sum()) for g in generator_grads) > 0  # through the teacher's features
    assert all(g is not None for g in torch.autograd.grad(terms["discriminator"], head))
    assert set(method.loss(module, _batch(1, teacher))) == {"critic", "discriminator"}
    assert method.teacher_forwards(_batch(0, teacher)) == 4 * (1 + 3)
    assert method.teacher_forwards(_batch(1, teacher)) == 4 * 2


def test_the_gan_losses_match_their_naive_forms():
    real, fake = torch.tensor([[0.5], [-2.0]]), torch.tensor([[1.0], [3.0]])
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    assert float(gan_generator_loss(fake)) == pytest.approx((softplus(-1.0) + softplus(-3.0)) / 2)
    assert float(gan_discriminator_loss(real, fake)) == pytest.approx(
        (softplus(1.0) + softplus(3.0)) / 2 + (softplus(-0.5) + softplus(2.0)) / 2)


def test_a_dmd2_cell_trains_saves_a_diffusers_student_and_is_scored_at_its_steps(tmp_path, capsys):
    board = run_points(tmp_path, [{"name": "dmd2", "generator_every": 2}],
                       [{"name": "points-2d", "steps": 1, "n": 64}, {"name": "points-2d", "steps": 2, "n": 64}],
                       steps=6, batch_size=32)
    rows = {row["row"]: row for row in board["rows"]}
    assert set(rows) == {"teacher", "dmd2[generator_every=2]"}
    student = rows["dmd2[generator_every=2]"]
    for bench in ("points-2d[n=64,steps=1]", "points-2d[n=64,steps=2]"):
        for metric in ("nll", "high_quality", "precision", "recall", "modes", "sliced_w2", "nfe"):
            assert f"{bench}/{metric}" in student["metrics"]
    assert student["metrics"]["points-2d[n=64,steps=2]/nfe"]["mean"] == 2.0
    # the real score on generator steps 0, 2, 4; the GAN head's features of real and generated points every step
    # and of the generator's own on its steps
    assert student["cost"]["steps"] == 6 and student["cost"]["teacher_forwards"] == 3 * 32 * 4 + 3 * 32 * 2
    folder = next((tmp_path / "out" / "cells").glob("dmd2*"))
    model, processor = load_point_model(folder / "model")
    assert isinstance(PointDenoiser.from_pretrained(folder / "model" / "denoiser"), PointDenoiser)
    assert processor.world.class_count == 4
    capsys.readouterr()
    assert main(["run", str(tmp_path / "points.yaml")]) == 0  # complete in the store: nothing trains again
    assert "training " not in capsys.readouterr().err
