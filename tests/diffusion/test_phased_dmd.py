"""Phased DMD (methods/diffusion/phased_dmd.py): the critic's score matching within a subinterval against a naive
form (values and gradients) and against its defining property, an unbiased x₀ target; the phases' experts and
critics, what each step's gradient reaches; the phased model's routing, saving and loading."""

import types

import pytest
import torch
from diffusers import DDPMScheduler

from tests.conftest import assert_same_value_and_gradients, leaf_copies
from tests.diffusion.conftest import run_points
from distillbench.kinds.diffusion.points import (Mixture, PhasedDenoiser, PointDenoiser, PointModel,
                                                 load_point_model, save_point_model)
from distillbench.methods.diffusion.phased_dmd import PhasedDMD, subinterval_denoising_loss, subinterval_target

SCHEDULER = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")


def _naive_loss(critic, x_s, start, timesteps, noise, labels):
    """Per sample, from ᾱ: x_t = √(ᾱ_t/ᾱ_s) x_s + √(1 − ᾱ_t − (ᾱ_t/ᾱ_s)(1 − ᾱ_s)) ε, the x₀ target
    x_s/√ᾱ_s − ε √ᾱ_t (1 − ᾱ_s) / (ᾱ_s σ_{t|s}), the v of that target at x_t, then the mean squared error."""
    terms = []
    for x, s, t, e, y in zip(x_s, start, timesteps, noise, labels):
        a_s = 1.0 if s < 0 else float(SCHEDULER.alphas_cumprod[s])
        a_t = float(SCHEDULER.alphas_cumprod[t])
        sigma_ts = (1 - a_t - (a_t / a_s) * (1 - a_s)) ** 0.5
        noisy = (a_t / a_s) ** 0.5 * x + sigma_ts * e
        target = x / a_s**0.5 - e * a_t**0.5 * (1 - a_s) / (a_s * sigma_ts)
        epsilon = (noisy - a_t**0.5 * target) / (1 - a_t) ** 0.5
        velocity = a_t**0.5 * epsilon - (1 - a_t) ** 0.5 * target
        prediction = critic(noisy[None], t[None], y[None])[0]
        terms.append(((prediction - velocity) ** 2).mean())
    return torch.stack(terms).mean()


def test_the_subinterval_loss_matches_its_naive_form_in_value_and_gradient():
    torch.manual_seed(0)
    critic = PointDenoiser(classes=4, hidden=16, layers=1)
    start, timesteps = torch.tensor([499, 499, -1, 249]), torch.tensor([700, 520, 300, 999])
    labels = torch.tensor([0, 1, 2, 4])
    tensors = (torch.randn(4, 2), torch.randn(4, 2))
    fast, slow = leaf_copies(*tensors), leaf_copies(*tensors)
    assert_same_value_and_gradients(subinterval_denoising_loss(critic, SCHEDULER, fast[0], start, timesteps, fast[1], labels),
                                    _naive_loss(critic, slow[0], start, timesteps, slow[1], labels), fast, slow)


def test_from_clean_data_it_is_the_ordinary_denoising_target():
    x0, noise, t = torch.randn(5, 2), torch.randn(5, 2), torch.tensor([10, 200, 500, 800, 999])
    noisy, target = subinterval_target(x0, noise, torch.full((5,), -1), t, SCHEDULER)
    assert torch.allclose(noisy, SCHEDULER.add_noise(x0, noise, t), atol=1e-6) and torch.equal(target, x0)


def test_the_subinterval_target_is_unbiased_where_the_naive_one_is_not():
    """E[x₀* | x_t] = E[x₀ | x_t]: the target's error, x₀* − x₀, is uncorrelated with x_t's noise (jointly
    Gaussian, so independent of x_t given x₀); the naive x_s/α_s's error is correlated with it."""
    draws = torch.Generator().manual_seed(0)
    count, s, t = 200_000, 400, 700
    x0 = torch.randn(count, 1, generator=draws)
    a_s, a_t = SCHEDULER.alphas_cumprod[s], SCHEDULER.alphas_cumprod[t]
    x_s = a_s.sqrt() * x0 + (1 - a_s).sqrt() * torch.randn(count, 1, generator=draws)
    noisy, target = subinterval_target(x_s, torch.randn(count, 1, generator=draws), torch.full((count,), s),
                                       torch.full((count,), t), SCHEDULER)
    noise_in_x_t = noisy - a_t.sqrt() * x0
    correlation = lambda error: float(torch.corrcoef(torch.cat([error, noise_in_x_t], 1).T)[0, 1])  # noqa: E731
    assert abs(correlation(target - x0)) < 0.01
    assert correlation(x_s / a_s.sqrt() - x0) > 0.3


def _batch(teacher, step=0, seed=0):
    return {"class_labels": torch.tensor([0, 1, 2, 3, 4, 0]), "noise": torch.randn(6, 2), "clean": torch.randn(6, 2),
            "step": step, "scheduler": SCHEDULER, "null_class": 4, "generator": torch.Generator().manual_seed(seed),
            "teacher": teacher}


def test_each_step_trains_its_phases_expert_and_critic_only():
    torch.manual_seed(0)
    teacher = PointDenoiser(classes=4, hidden=16, layers=1).requires_grad_(False)
    method = PhasedDMD()
    assert method.check() == [] and "generator_steps" in PhasedDMD(generator_steps=3).check()[0]
    module = method.training_module(PointDenoiser(classes=4, hidden=16, layers=1))
    trained = set()
    for seed in range(8):
        module.zero_grad()
        terms = method.loss(module, _batch(teacher, seed=seed))
        assert set(terms) == {"critic", "distribution_matching"}
        sum(terms.values()).backward()
        reached = [index for index, part in enumerate(module.parts)
                   if any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.generator.parameters())]
        critics = [index for index, part in enumerate(module.parts)
                   if any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.critic.parameters())]
        assert len(reached) == 1 and critics == reached  # the generator's gradient is non-zero, in one phase
        trained.add(reached[0])
        assert all(p.grad is None for p in teacher.parameters())
    assert trained == {0, 1}
    module.zero_grad()
    terms = method.loss(module, _batch(teacher, step=1))  # between generator updates: the critic alone
    assert set(terms) == {"critic"}


def test_the_phased_model_routes_by_timestep_and_saves_the_diffusers_way(tmp_path):
    torch.manual_seed(0)
    method = PhasedDMD()
    method.prepare(types.SimpleNamespace(batching=types.SimpleNamespace(scheduler=SCHEDULER)))
    assert method.phase_ends == [499]  # 4 steps [999, 749, 499, 249] in two phases
    module = method.training_module(PointDenoiser(classes=4, hidden=16, layers=1))
    for part in module.parts:
        torch.nn.init.normal_(part.generator.output[1].weight)  # experts unlike each other
    model = method.trained_model(module)
    x, labels = torch.randn(4, 2), torch.tensor([0, 1, 2, 3])
    t = torch.tensor([999, 500, 499, 0])
    expected = torch.cat([module.parts[0].generator(x[:2], t[:2], labels[:2]),
                          module.parts[1].generator(x[2:], t[2:], labels[2:])])
    assert torch.allclose(model(x, t, labels), expected)
    world = Mixture(((0.0, 0.0),), 0.1, (1.0,), (0,))
    save_point_model(model, PointModel(dict(SCHEDULER.config), world), tmp_path)
    loaded, _ = load_point_model(tmp_path)
    assert isinstance(loaded, PhasedDenoiser) and loaded.boundaries == [499]
    assert torch.allclose(loaded(x, t, labels), expected)
    with pytest.raises(ValueError, match="descending"):
        PhasedDenoiser([PointDenoiser(classes=4, hidden=8, layers=1)] * 3, [100, 400])


def test_a_phased_cell_trains_saves_its_experts_and_is_scored_at_its_steps(tmp_path):
    board = run_points(tmp_path, [{"name": "phased-dmd", "generator_every": 1}],
                       [{"name": "points-2d", "steps": steps, "n": 32, "sampler": "lcm"} for steps in (1, 4)])
    row = next(row for row in board["rows"] if row["row"] == "phased-dmd[generator_every=1]")
    assert row["metrics"]["points-2d[n=32,sampler=lcm,steps=4]/nfe"]["mean"] == 4.0
    model, _ = load_point_model(next((tmp_path / "out" / "cells").glob("phased-dmd*")) / "model")
    assert isinstance(model, PhasedDenoiser) and model.boundaries == [499]
