"""SiD (methods/diffusion/sid.py): its generator loss against a naive form, in value and gradient, and what
its gradient reaches (the generator, through both score networks' evaluations; never their parameters)."""

import pytest
import torch
from diffusers import DDPMScheduler

from tests.conftest import assert_same_value_and_gradients, leaf_copies
from distillbench.kinds.diffusion.points import PointDenoiser
from distillbench.methods.diffusion.sid import SiD, sid_generator_loss

SCHEDULER = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")


def _naive(sample, real, fake, alpha):
    """Per sample: Σ_d (r − f)((r − x) − α(r − f)) / w, w = mean_d |x − r| (no gradient), then the batch mean."""
    losses = []
    for x, r, f in zip(sample, real, fake):
        weight = max(float((x - r).abs().mean().detach()), 1e-5)  # the weight carries no gradient
        losses.append(sum((r[d] - f[d]) * ((r[d] - x[d]) - alpha * (r[d] - f[d])) for d in range(len(x))) / weight)
    return torch.stack(losses).mean()


@pytest.mark.parametrize("alpha", [1.0, 1.2])
def test_the_generator_loss_matches_its_naive_form_in_value_and_gradient(alpha):
    torch.manual_seed(0)
    tensors = (torch.randn(6, 2), torch.randn(6, 2), torch.randn(6, 2))
    fast, slow = leaf_copies(*tensors), leaf_copies(*tensors)
    assert_same_value_and_gradients(sid_generator_loss(*fast, alpha), _naive(*slow, alpha), fast, slow)


def test_alpha_one_is_the_difference_times_the_fake_gap():
    sample, real, fake = torch.randn(4, 2), torch.randn(4, 2), torch.randn(4, 2)
    weight = (sample - real).abs().mean(dim=1, keepdim=True)
    expected = ((real - fake) * (fake - sample) / weight).sum(dim=1).mean()
    assert torch.allclose(sid_generator_loss(sample, real, fake, 1.0), expected)


def test_the_generator_term_trains_the_generator_only():
    torch.manual_seed(0)
    teacher = PointDenoiser(classes=4, hidden=16, layers=1).requires_grad_(False)
    method = SiD()
    module = method.training_module(PointDenoiser(classes=4, hidden=16, layers=1))
    batch = {"class_labels": torch.tensor([0, 1, 4, 4]), "noise": torch.randn(4, 2), "step": 0, "scheduler": SCHEDULER,
             "null_class": 4, "generator": torch.Generator().manual_seed(0), "teacher": teacher}
    terms = method.loss(module, batch)
    assert set(terms) == {"critic", "score_identity"}
    terms["score_identity"].backward()
    assert sum(float(p.grad.abs().sum()) for p in module.generator.parameters()) > 0  # the DistillationDPO caution
    assert all(p.grad is None for p in module.critic.parameters())  # the critic learns from its own term only
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.requires_grad for p in module.critic.parameters())  # and is trainable again afterwards


def test_lsg_guides_the_fake_score_with_the_critics_own_unconditional_output():
    """SiD-LSG: y_f = x̂₀ of u_c + κ₂ (c_c − u_c), both branches the critic's; κ₂ = 1 is the plain conditional."""
    torch.manual_seed(0)
    teacher, critic = (PointDenoiser(classes=4, hidden=16, layers=1) for _ in range(2))
    sample, labels = torch.randn(4, 2), torch.tensor([0, 1, 2, 3])
    losses = {}
    for kappa in (1.0, 2.0):
        losses[kappa] = SiD(fake_guidance=kappa, alpha=1.0).generator_loss(critic, teacher, SCHEDULER, sample, labels,
                                                                           torch.Generator().manual_seed(1))
    draws = torch.Generator().manual_seed(1)
    t = torch.randint(20, 980, (4,), generator=draws)
    noisy = SCHEDULER.add_noise(sample, torch.randn((4, 2), generator=draws), t)
    a = SCHEDULER.alphas_cumprod[t].unsqueeze(1)
    with torch.no_grad():
        real = a.sqrt() * noisy - (1 - a).sqrt() * teacher(noisy, t, labels)
        unconditional, conditional = critic(noisy, t, None), critic(noisy, t, labels)
        fake = a.sqrt() * noisy - (1 - a).sqrt() * (unconditional + 2.0 * (conditional - unconditional))
    assert float(losses[2.0].detach()) == pytest.approx(float(sid_generator_loss(sample, real, fake, 1.0)), rel=1e-5)
    assert float(losses[2.0].detach()) != pytest.approx(float(losses[1.0].detach()))
