"""DMD (methods/diffusion/dmd.py): its regression term against a naive form, its paired set (the teacher's own
DDIM solutions of seeded noise, made once), and what its gradient reaches."""

from types import SimpleNamespace

import pytest
import torch
from diffusers import DDPMScheduler

from distillbench.kinds.diffusion.kind import PromptBatching
from distillbench.kinds.diffusion.points import PointDenoiser, sample_points, solve
from distillbench.methods.diffusion.dmd import DMD, regression_loss
from distillbench.methods.diffusion.dmd2 import DMD2

SCHEDULER = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")


def test_the_regression_loss_matches_its_naive_form_in_value_and_gradient():
    torch.manual_seed(0)
    sample, reference = torch.randn(5, 2, requires_grad=True), torch.randn(5, 2)
    loss = regression_loss(sample, reference)
    naive = sum((float(a) - float(b)) ** 2 for x, y in zip(sample.detach(), reference) for a, b in zip(x, y)) / 10
    assert float(loss.detach()) == pytest.approx(naive, rel=1e-6)
    (gradient,) = torch.autograd.grad(loss, sample)
    assert torch.allclose(gradient, 2 * (sample.detach() - reference) / 10)


def test_solve_is_the_sampler_from_given_noise():
    torch.manual_seed(0)
    teacher = PointDenoiser(classes=4, hidden=16, layers=1)
    config = dict(SCHEDULER.config)
    noise = torch.randn(8, 2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(solve(teacher, config, noise, 4), sample_points(teacher, config, 8, 4, seed=3))


def _batch(step, teacher):
    return {"class_labels": torch.tensor([0, 1, 2, 3]), "noise": torch.randn(4, 2), "clean": torch.randn(4, 2),
            "step": step, "scheduler": SCHEDULER, "generator": torch.Generator().manual_seed(step), "teacher": teacher}


def _prepared(method, teacher, seed=0):
    batching = PromptBatching(torch.tensor([0, 1, 2, 3] * 4), torch.randn(16, 2), null_class=4, null_fraction=0.25,
                              scheduler=SCHEDULER)
    method.prepare(SimpleNamespace(batching=batching, frozen={"teacher": teacher}, seed=seed, device="cpu"))
    return method


def test_the_paired_set_is_the_teachers_ddim_solutions_of_seeded_noise():
    torch.manual_seed(0)
    teacher = PointDenoiser(classes=4, hidden=16, layers=1).requires_grad_(False)
    noise, labels, solutions = _prepared(DMD(regression_steps=4, pairs=32), teacher)._pairs
    assert noise.shape == solutions.shape == (32, 2) and set(labels.tolist()) <= {0, 1, 2, 3, 4}
    assert torch.equal(solutions, solve(teacher, dict(SCHEDULER.config), noise, 4, labels))
    again = _prepared(DMD(regression_steps=4, pairs=32), teacher)._pairs
    assert all(torch.equal(a, b) for a, b in zip(again, (noise, labels, solutions)))  # a resumed run makes the same
    other_seed = _prepared(DMD(regression_steps=4, pairs=32), teacher, seed=1)._pairs
    assert not torch.equal(other_seed[0], noise)


def test_dmd_trains_generator_and_critic_every_step_with_its_regression_term():
    torch.manual_seed(0)
    teacher = PointDenoiser(classes=4, hidden=16, layers=1).requires_grad_(False)
    method = _prepared(DMD(regression_steps=4, pairs=32), teacher)
    module = method.training_module(PointDenoiser(classes=4, hidden=16, layers=1))
    assert module.discriminator is None  # DMD has no GAN term
    for step in (0, 1):
        module.zero_grad(set_to_none=True)
        terms = method.loss(module, _batch(step, teacher))
        assert set(terms) == {"critic", "distribution_matching", "regression"}
        (gradient,) = torch.autograd.grad(terms["regression"], [next(module.generator.parameters())], retain_graph=True)
        assert float(gradient.abs().sum()) > 0
        sum(terms.values()).backward()
        assert all(p.grad is not None for p in module.generator.parameters())
        assert all(p.grad is None for p in teacher.parameters())
    assert method.teacher_forwards(_batch(0, teacher)) == 4 + 32 * 4  # the real score; the paired set, once
    assert method.teacher_forwards(_batch(1, teacher)) == 4


def test_dmd2_is_dmd_regression_free_with_two_time_scales_and_a_gan_term():
    assert (DMD2().regression_weight, DMD2().generator_every, DMD2().gan_generator_weight) == (0.0, 5, 3e-3)
    assert (DMD().regression_weight, DMD().generator_every, DMD().gan_generator_weight) == (0.25, 1, 0.0)
