"""Decoupled DMD (methods/diffusion/decoupled_dmd.py): its proxy loss against a naive form in value and gradient,
the two terms (CFG augmentation vanishes without prompts), their draws and what the gradient reaches."""

import pytest
import torch
from diffusers import DDPMScheduler

from distillbench.kinds.diffusion.points import PointDenoiser
from distillbench.methods.diffusion.decoupled_dmd import DecoupledDMD, decoupled_matching_loss

SCHEDULER = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")


def test_the_proxy_loss_matches_its_naive_form_and_pushes_along_both_terms():
    torch.manual_seed(0)
    sample, matching, augmentation = torch.randn(5, 2, requires_grad=True), torch.randn(5, 2), torch.randn(5, 2)
    loss = decoupled_matching_loss(sample, matching, augmentation, weight=0.5)
    naive = sum((0.5 * (float(m) + float(a))) ** 2 for row_m, row_a in zip(matching, augmentation)
                for m, a in zip(row_m, row_a)) / 10
    assert float(loss.detach()) == pytest.approx(naive, rel=1e-6)
    (gradient,) = torch.autograd.grad(loss, sample)
    assert torch.allclose(gradient, -2 * 0.5 * (matching + augmentation) / 10)  # descent moves x along Δ


def _setup():
    torch.manual_seed(0)
    teacher = PointDenoiser(classes=4, hidden=16, layers=1).requires_grad_(False)
    return teacher, PointDenoiser(classes=4, hidden=16, layers=1)


def test_without_prompts_the_augmentation_term_vanishes():
    teacher, critic = _setup()
    sample = torch.randn(6, 2, requires_grad=True)
    method = DecoupledDMD(guidance=3.0)
    null = torch.full((6,), 4)
    unconditional = method.generator_loss(critic, teacher, SCHEDULER, sample, null, torch.Generator().manual_seed(1))
    without = DecoupledDMD(guidance=1.0).generator_loss(critic, teacher, SCHEDULER, sample, null,
                                                        torch.Generator().manual_seed(1))
    assert torch.allclose(unconditional, without)
    prompted = method.generator_loss(critic, teacher, SCHEDULER, sample, torch.tensor([0, 1, 2, 3, 0, 1]),
                                     torch.Generator().manual_seed(1))
    assert not torch.allclose(prompted, without)  # with prompts, CA adds to DM


def test_the_augmentation_draw_is_no_noisier_than_the_students_input():
    method = DecoupledDMD(min_timestep=0.5)
    timesteps, _ = method.augmentation_renoising(SCHEDULER, torch.zeros(4000, 2), torch.Generator().manual_seed(0))
    assert int(timesteps.min()) >= 500 and int(timesteps.max()) == 999


def test_the_generator_gets_a_gradient_and_the_teacher_none():
    teacher, student = _setup()
    method = DecoupledDMD(generator_every=2)
    module = method.training_module(student)
    batch = {"class_labels": torch.tensor([0, 1, 2, 4]), "noise": torch.randn(4, 2), "clean": torch.randn(4, 2),
             "step": 0, "scheduler": SCHEDULER, "generator": torch.Generator().manual_seed(0), "teacher": teacher}
    terms = method.loss(module, batch)
    assert set(terms) == {"critic", "decoupled_matching"}
    sum(terms.values()).backward()
    assert sum(float(p.grad.abs().sum()) for p in module.generator.parameters()) > 0
    assert all(p.grad is None for p in teacher.parameters())
    assert method.teacher_forwards(batch) == 3 * 4 and method.teacher_forwards({**batch, "step": 1}) == 0
