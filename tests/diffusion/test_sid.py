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
