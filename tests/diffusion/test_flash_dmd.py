"""Flash-DMD (methods/diffusion/flash_dmd.py): the step-level preference loss and the pocket reward against naive
forms (values and gradients), which steps each loss trains, and a run through the joint stage."""

import json
import math
import types

import pytest
import torch
from diffusers import DDPMScheduler

from tests.conftest import assert_same_value_and_gradients, leaf_copies
from tests.diffusion.conftest import run_points
from distillbench.kinds.diffusion.points import PointDenoiser
from distillbench.methods.diffusion.flash_dmd import FlashDMD, diffused_log_density, step_preference_loss
from distillbench.pocket.gaussians2d import grid

SCHEDULER = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
WORLD = grid()


def _naive_preference(policy, reference, winners, losers, sigma, beta):
    """Per sample: log N(w; μ_θ, σ²) − log N(w; μ_ref, σ²) − (the same for l), then −log σ(β H), averaged."""
    def log_normal(x, mean):
        return sum(-(x[d] - mean[d]) ** 2 / (2 * sigma**2) - math.log(sigma * math.sqrt(2 * math.pi))
                   for d in range(len(x)))

    losses = []
    for p, r, w, l in zip(policy, reference, winners, losers):
        h = (log_normal(w, p) - log_normal(w, r)) - (log_normal(l, p) - log_normal(l, r))
        losses.append(-torch.log(torch.sigmoid(beta * h)))
    return torch.stack(losses).mean()


def test_the_preference_loss_matches_its_naive_form_in_value_and_gradient():
    torch.manual_seed(0)
    tensors = tuple(torch.randn(5, 2) for _ in range(4))
    fast, slow = leaf_copies(*tensors), leaf_copies(*tensors)
    assert_same_value_and_gradients(step_preference_loss(*fast, 0.7, 0.5), _naive_preference(*slow, 0.7, 0.5),
                                    fast, slow)


def test_the_pocket_reward_is_the_prompts_density_diffused():
    """Against a naive sum over the prompt's modes of the diffused Gaussians (the whole world for no prompt)."""
    points, labels = torch.randn(6, 2), torch.tensor([0, 1, 3, 4, 4, 2])
    alpha, sigma = 0.8, 0.6
    reward = diffused_log_density(WORLD, points, alpha, sigma, labels)
    for point, label, value in zip(points.double(), labels, reward):
        modes = [m for m, c in enumerate(WORLD.classes) if label >= WORLD.class_count or c == label]
        total = sum(WORLD.weights[m] for m in modes)
        variance = alpha**2 * (WORLD.std / WORLD.scale) ** 2 + sigma**2
        density = sum(WORLD.weights[m] / total * math.exp(-float(((point - alpha * torch.tensor(WORLD.means[m])
                                                                  / WORLD.scale) ** 2).sum()) / (2 * variance))
                      / (2 * math.pi * variance) for m in modes)
        assert float(value) == pytest.approx(math.log(density), rel=1e-6)


def _batch(teacher, step, seed=0):
    return {"class_labels": torch.tensor([0, 1, 2, 3, 4, 0]), "noise": torch.randn(6, 2), "clean": torch.randn(6, 2),
            "step": step, "scheduler": SCHEDULER, "null_class": 4, "generator": torch.Generator().manual_seed(seed),
            "teacher": teacher}


def _method(**options):
    method = FlashDMD(rl_start=10, **options)
    method.prepare(types.SimpleNamespace(batching=types.SimpleNamespace(world=WORLD)))
    return method


def test_distillation_steps_train_the_generator_by_matching_and_the_gan_and_preference_steps_by_the_reward():
    torch.manual_seed(0)
    teacher = PointDenoiser(classes=4, hidden=16, layers=1).requires_grad_(False)
    method = _method()
    module = method.training_module(PointDenoiser(classes=4, hidden=16, layers=1))
    assert [method.preference_step(step) for step in range(9, 17)] == [False, True, True, True, True, True,
                                                                       False, True]  # 5 : 1 from step 10
    terms = method.loss(module, _batch(teacher, step=3))
    assert set(terms) == {"critic", "discriminator", "distribution_matching", "gan"}
    for name in ("distribution_matching", "gan"):
        module.zero_grad()
        terms[name].backward(retain_graph=True)
        assert sum(float(p.grad.abs().sum()) for p in module.generator.parameters()) > 0, name
        assert all(p.grad is None or not p.grad.any() for p in module.critic.parameters())
    terms = method.loss(module, _batch(teacher, step=11))
    assert set(terms) == {"preference", "critic"}
    module.zero_grad()
    terms["preference"].backward()
    assert sum(float(p.grad.abs().sum()) for p in module.generator.parameters()) > 0
    assert all(p.grad is None for p in module.reference.parameters()) and method.teacher_forwards(_batch(teacher, 11)) == 0
    assert "high_noise_steps" in FlashDMD(high_noise_steps=4).check()[0]


def test_at_the_reference_a_preference_step_pulls_towards_the_winner():
    """With θ = ref, H = 0 and the loss is log 2; its gradient moves the policy's mean towards w − l."""
    policy = torch.zeros(3, 2, requires_grad=True)
    winners, losers = torch.tensor([[1.0, 0.0]] * 3), torch.tensor([[-1.0, 0.0]] * 3)
    loss = step_preference_loss(policy, policy.detach(), winners, losers, 0.5, 1.0)
    assert float(loss.detach()) == pytest.approx(math.log(2))
    loss.backward()
    assert (policy.grad[:, 0] < 0).all() and (policy.grad[:, 1] == 0).all()  # descent moves +x, to the winner


def test_a_flash_cell_runs_through_the_joint_stage_and_copies_its_reference(tmp_path):
    board = run_points(tmp_path, [{"name": "flash-dmd", "rl_start": 2}],
                       [{"name": "points-2d", "steps": 4, "n": 32, "sampler": "lcm", "prompted": True}],
                       steps=6, checkpoint_every=3, data={"prompts": 256, "null_fraction": 0.1})
    row = next(row for row in board["rows"] if row["row"] == "flash-dmd[rl_start=2]")
    assert "points-2d/high_quality" in row["metrics"]
    log = [json.loads(line) for line in next((tmp_path / "out" / "cells").glob("flash-dmd*")).joinpath(
        "train_log.jsonl").read_text().splitlines()]
    assert any("preference" in entry for entry in log) and any("distribution_matching" in entry for entry in log)
