"""f-distill (methods/diffusion/f_distill.py): h(r) against a naive form and against the authors' group's
code (NVlabs/FastGen, transcribed below), the weighted distribution-matching gradient, the ratio's t-bin EMA
carried across steps and a resume, and what the generator's and the head's gradients reach."""

import math

import pytest
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from distillbench.kinds.diffusion.points import PointDenoiser
from distillbench.methods.diffusion.critic import distribution_matching_loss
from distillbench.methods.diffusion.f_distill import (F_DIVERGENCE_WEIGHTS, FDistill, bin_normalised_ratio,
                                                      density_ratio, f_divergence_weights)

SCHEDULER = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
DIVERGENCES = sorted(F_DIVERGENCE_WEIGHTS)


# --- NVlabs/FastGen at 34f30e8ff1a563555fc0c7d59f1c1409dacd8af2, transcribed for this test only ----------------
# fastgen/methods/distribution_matching/f_distill.py: all_f_div_weighting_function and
# FdistillModel._get_f_div_weighting_h (one process: world_size 1; self.net.bins passed in and returned);
# fastgen/methods/common_loss.py: variational_score_distillation_loss.
FASTGEN_H = {"reverse-kl": lambda r: torch.tensor(1, dtype=r.dtype, device=r.device), "forward-kl": lambda r: r,
             "js": lambda r: 1 - 1 / (1 + r), "squared-hellinger": lambda r: r**0.5, "jeffreys": lambda r: 1 + r}


def _fastgen_h(fake_logits, t, bins, f_div, ratio_lower=0.1, ratio_upper=20.0, ratio_normalization=True,
               ratio_ema_rate=0.0, min_t=0.0, max_t=1000.0):
    fake_logits_fp32 = fake_logits.float()
    fake_logits_clamped = torch.clamp(fake_logits_fp32.mean(dim=1), min=-10.0, max=10.0)
    ratio = torch.exp(fake_logits_clamped).detach()
    ratio = torch.clamp(ratio, ratio_lower, ratio_upper)
    if ratio_normalization:
        bin_num = len(bins)
        bin_width = (max_t - min_t) / bin_num
        idx = ((t.double() - min_t) / bin_width).floor().long().clamp(0, bin_num - 1)
        cnt = torch.bincount(idx, minlength=bin_num).float()
        ratio_sum = torch.bincount(idx, weights=ratio, minlength=bin_num).float()
        valid = cnt > 0
        new_vals = ratio_sum / (cnt + 1e-6)
        bins_fp32 = bins.float().clone()
        bins_fp32[valid] = bins_fp32[valid] * ratio_ema_rate + (1 - ratio_ema_rate) * new_vals[valid]
        bins = bins_fp32
        ratio = ratio / (bins_fp32[idx] + 1e-6)
    h = FASTGEN_H[f_div](ratio)
    h_sum = h.sum()
    h_mean = h_sum / len(h)  # len(h) * world_size(); for reverse-KL h is the scalar 1, len() of a 0-d tensor fails
    h = h / (h_mean + 1e-6)
    return h, bins


def _fastgen_vsd(gen_data, teacher_x0, fake_score_x0, additional_scale):
    dims = tuple(range(1, teacher_x0.ndim))
    with torch.no_grad():
        diff_abs_mean = (gen_data - teacher_x0).abs().mean(dim=dims, keepdim=True)
        w = 1 / (diff_abs_mean + 1e-6)
        w *= additional_scale.view(-1, *([1] * (w.ndim - 1)))
        pseudo_target = gen_data - (fake_score_x0 - teacher_x0) * w
    return 0.5 * F.mse_loss(gen_data, pseudo_target, reduction="mean")
# --- end of the transcription -----------------------------------------------------------------------------


@pytest.mark.parametrize("divergence", [d for d in DIVERGENCES if d != "reverse-kl"])
@pytest.mark.parametrize("ema", [0.0, 0.5])
def test_the_weights_match_fastgen_over_two_steps_of_the_bin_ema(divergence, ema):
    torch.manual_seed(0)
    ours_bins = theirs_bins = torch.ones(10)
    for _ in range(2):  # the second step normalises by the bins the first one moved
        logits, t = 3 * torch.randn(64, 1), torch.randint(20, 980, (64,))
        ratio, ours_bins = bin_normalised_ratio(density_ratio(logits, 0.1, 20.0), t, 1000, ours_bins, ema)
        ours = f_divergence_weights(ratio, divergence)
        theirs, theirs_bins = _fastgen_h(logits, t, theirs_bins, divergence, ratio_ema_rate=ema)
        assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-6)
        assert torch.allclose(ours_bins, theirs_bins)


def test_reverse_kl_weighs_every_sample_alike_as_dmd():
    ratio = torch.tensor([0.1, 1.0, 7.0, 20.0])
    assert torch.allclose(f_divergence_weights(ratio, "reverse-kl"), torch.full((4,), 1 / (1 + 1e-6)))


def _naive_weights(ratio, divergence):
    """h_f(r) = f''(r)·r² from each divergence's generator f, by central differences, over its batch mean."""
    generators = {"reverse-kl": lambda r: -math.log(r), "forward-kl": lambda r: r * math.log(r),
                  "js": lambda r: r * math.log(r) - (1 + r) * math.log((1 + r) / 2),
                  "squared-hellinger": lambda r: (math.sqrt(r) - 1) ** 2, "jeffreys": lambda r: (r - 1) * math.log(r)}
    f, step = generators[divergence], 1e-4
    h = [(f(r + step) - 2 * f(r) + f(r - step)) / step**2 * r * r for r in map(float, ratio)]
    mean = sum(h) / len(h)
    return [value / (mean + 1e-6) for value in h]


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_each_weight_is_f_second_derivative_times_r_squared(divergence):
    # JS's f here is the divergence's own (2·JS, f''(r) = 1/(r(1+r))); the squared Hellinger's f''(r)·r² is
    # √r/2, so its h is √r up to the factor the batch mean removes
    ratio = torch.tensor([0.2, 0.9, 1.5, 4.0, 12.0], dtype=torch.float64)
    assert f_divergence_weights(ratio, divergence).tolist() == pytest.approx(_naive_weights(ratio, divergence), rel=1e-4)


def test_the_ratio_is_the_exponentiated_logit_mean_clamped_then_clipped():
    logits = torch.tensor([[0.0], [math.log(3.0)], [50.0], [-50.0], [1.0]])
    assert density_ratio(logits, 0.1, 20.0).tolist() == pytest.approx([1.0, 3.0, 20.0, 0.1, math.e], rel=1e-6)


def test_the_weighted_matching_gradient_is_h_times_g_and_matches_fastgen():
    torch.manual_seed(1)
    sample, real, fake = torch.randn(6, 2, requires_grad=True), torch.randn(6, 2), torch.randn(6, 2)
    weights = torch.rand(6) + 0.5
    (ours,) = torch.autograd.grad(distribution_matching_loss(sample, real, fake, weights), sample)
    normaliser = (sample.detach() - real).abs().mean(dim=1, keepdim=True)
    assert torch.allclose(ours, weights[:, None] * (fake - real) / normaliser / sample.numel())
    theirs_sample = sample.detach().clone().requires_grad_()
    (theirs,) = torch.autograd.grad(_fastgen_vsd(theirs_sample, real, fake, weights), theirs_sample)
    assert torch.allclose(ours, theirs, rtol=1e-4)  # FastGen's normaliser has + 1e-6


def _batch(step, teacher, labels=(0, 1, 2, 3)):
    labels = torch.tensor(labels)
    return {"class_labels": labels, "noise": torch.randn(len(labels), 2), "clean": torch.randn(len(labels), 2),
            "step": step, "scheduler": SCHEDULER, "generator": torch.Generator().manual_seed(step), "teacher": teacher}


def _fresh(generator_every):
    """(teacher, a freshly reset method, its training module) on small point models."""
    torch.manual_seed(0)
    teacher = PointDenoiser(classes=4, hidden=16, layers=1).requires_grad_(False)
    method = FDistill(generator_every=generator_every)
    method.load_state_dict({})
    return teacher, method, method.training_module(PointDenoiser(classes=4, hidden=16, layers=1))


def test_the_generator_and_head_get_their_own_gradients_and_the_teacher_none():
    teacher, method, module = _fresh(generator_every=2)
    assert module.discriminator is not None
    terms = method.loss(module, _batch(0, teacher))
    assert set(terms) == {"critic", "discriminator", "f_divergence", "gan"}
    # the head learns from its own loss only: the generator's GAN term holds it fixed
    head_grads = torch.autograd.grad(terms["gan"], list(module.discriminator.parameters()), allow_unused=True,
                                     retain_graph=True)
    assert all(g is None for g in head_grads)
    sum(terms.values()).backward()
    assert sum(float(p.grad.abs().sum()) for p in module.generator.parameters()) > 0  # the DistillationDPO caution
    assert all(p.grad is not None for p in module.discriminator.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    assert method.teacher_forwards(_batch(0, teacher)) == 4 * (1 + 3)  # real score; head features: real, fake, own
    assert method.teacher_forwards(_batch(1, teacher)) == 4 * 2  # a critic-only step still trains the head


def test_the_bins_move_with_the_steps_and_survive_a_resume():
    teacher, method, module = _fresh(generator_every=1)
    method.loss(module, _batch(0, teacher, labels=tuple(range(4)) * 8))
    saved = method.state_dict()
    assert len(saved["ratio_bins"]) == 10 and saved["ratio_bins"] != [1.0] * 10
    resumed = FDistill(generator_every=1)
    resumed.load_state_dict(saved)
    batch = _batch(1, teacher, labels=tuple(range(4)) * 8)
    first = method.loss(module, dict(batch, generator=torch.Generator().manual_seed(9)))["f_divergence"]
    second = resumed.loss(module, dict(batch, generator=torch.Generator().manual_seed(9)))["f_divergence"]
    assert torch.equal(first, second)


def test_a_ratio_range_upside_down_is_refused():
    assert FDistill(ratio_lower=5.0, ratio_upper=2.0).check() == ["ratio_lower: below ratio_upper"]
