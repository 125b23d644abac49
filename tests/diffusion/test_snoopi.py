"""SNOOPI's PG-SB (methods/diffusion/snoopi.py): one random guidance scale in both scores, the loss against a
naive form in value and gradient, and what its gradient reaches."""

import pytest
import torch
from diffusers import DDPMScheduler

from distillbench.kinds.diffusion.points import PointDenoiser
from distillbench.methods.diffusion.snoopi import SNOOPI, random_guidance

SCHEDULER = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                          clip_sample=False)


def test_the_scale_is_uniform_over_its_range():
    draws = torch.Generator().manual_seed(0)
    scales = [random_guidance(0.5, 4.0, draws) for _ in range(2000)]
    assert 0.5 <= min(scales) < 0.6 and 3.9 < max(scales) < 4.0
    assert sum(scales) / len(scales) == pytest.approx(2.25, abs=0.08)


def test_the_loss_guides_both_scores_with_one_scale_and_matches_its_naive_form():
    torch.manual_seed(0)
    teacher, critic = PointDenoiser(classes=4, hidden=16, layers=1), PointDenoiser(classes=4, hidden=16, layers=1)
    sample, labels = torch.randn(4, 2, requires_grad=True), torch.tensor([0, 1, 2, 4])
    loss = SNOOPI().generator_loss(critic, teacher, SCHEDULER, sample, labels, torch.Generator().manual_seed(1))
    draws = torch.Generator().manual_seed(1)
    kappa = 0.5 + 3.5 * float(torch.rand((), generator=draws))
    t = torch.randint(20, 980, (4,), generator=draws)
    noisy = SCHEDULER.add_noise(sample.detach(), torch.randn((4, 2), generator=draws), t)
    a = SCHEDULER.alphas_cumprod[t].unsqueeze(1)

    def x0(model):  # (1 − κ) v(x, t) + κ v(x, t, y), then x̂₀ = α x_t − σ v
        with torch.no_grad():
            velocity = (1 - kappa) * model(noisy, t, None) + kappa * model(noisy, t, labels)
        return a.sqrt() * noisy - (1 - a).sqrt() * velocity

    real, fake = x0(teacher), x0(critic)
    g = (fake - real) / (sample.detach() - real).abs().mean(dim=1, keepdim=True)
    naive = 0.5 * ((sample - (sample - g).detach()) ** 2).mean()
    assert float(loss.detach()) == pytest.approx(float(naive.detach()), rel=1e-5)
    (gradient,) = torch.autograd.grad(loss, sample)
    assert torch.allclose(gradient, g / 8, atol=1e-6)


def test_the_generator_alone_gets_its_gradient_and_the_teacher_counts_twice():
    torch.manual_seed(0)
    teacher = PointDenoiser(classes=4, hidden=16, layers=1).requires_grad_(False)
    method = SNOOPI()
    module = method.training_module(PointDenoiser(classes=4, hidden=16, layers=1))
    batch = {"class_labels": torch.tensor([0, 1, 2, 4]), "noise": torch.randn(4, 2), "clean": torch.randn(4, 2),
             "step": 0, "scheduler": SCHEDULER, "generator": torch.Generator().manual_seed(0), "teacher": teacher}
    terms = method.loss(module, batch)
    assert set(terms) == {"critic", "variational_score"}
    terms["variational_score"].backward()
    assert sum(float(p.grad.abs().sum()) for p in module.generator.parameters()) > 0  # the DistillationDPO caution
    assert all(p.grad is None for p in module.critic.parameters())
    assert method.teacher_forwards(batch) == 8
    assert SNOOPI(guidance_min=5.0).check() == ["guidance_min: at most guidance_max"]
    assert SNOOPI(guidance_min=4.0).check() == []  # one fixed scale: SwiftBrush, the control
