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


def _guided_fake_loss(fake_guidance):
    """SiD's generator loss at `fake_guidance` against the same loss with y_f written out: x̂₀ of u + g (c − u)."""
    torch.manual_seed(0)
    teacher, critic = (PointDenoiser(classes=4, hidden=16, layers=1) for _ in range(2))
    sample, labels = torch.randn(4, 2), torch.tensor([0, 1, 2, 3])
    loss = SiD(fake_guidance=fake_guidance, alpha=1.0).generator_loss(critic, teacher, SCHEDULER, sample, labels,
                                                                      torch.Generator().manual_seed(1))
    draws = torch.Generator().manual_seed(1)
    t = torch.randint(20, 980, (4,), generator=draws)
    noisy = SCHEDULER.add_noise(sample, torch.randn((4, 2), generator=draws), t)
    a = SCHEDULER.alphas_cumprod[t].unsqueeze(1)
    with torch.no_grad():
        real = a.sqrt() * noisy - (1 - a).sqrt() * teacher(noisy, t, labels)
        unconditional, conditional = critic(noisy, t, None), critic(noisy, t, labels)
        fake = a.sqrt() * noisy - (1 - a).sqrt() * (unconditional + fake_guidance * (conditional - unconditional))
        unprompted = a.sqrt() * noisy - (1 - a).sqrt() * unconditional
    return loss, sid_generator_loss(sample, real, fake, 1.0), sid_generator_loss(sample, real, unprompted, 1.0)


def test_lsg_guides_the_fake_score_with_the_critics_own_unconditional_output():
    """SiD-LSG: y_f = x̂₀ of u_c + κ₂ (c_c − u_c), both branches the critic's; κ₂ = 1 is the plain conditional."""
    loss, written_out, _ = _guided_fake_loss(2.0)
    assert float(loss.detach()) == pytest.approx(float(written_out), rel=1e-5)
    assert float(loss.detach()) != pytest.approx(float(_guided_fake_loss(1.0)[0].detach()))


def test_zero_cfg_evaluates_the_fake_score_without_the_prompt():
    loss, written_out, unprompted = _guided_fake_loss(0.0)
    assert float(loss.detach()) == pytest.approx(float(written_out), rel=1e-5)
    assert float(loss.detach()) == pytest.approx(float(unprompted), rel=1e-5)


def test_anti_cfg_guides_the_fake_score_away_from_the_prompt():
    loss, written_out, unprompted = _guided_fake_loss(-1.0)
    assert float(loss.detach()) == pytest.approx(float(written_out), rel=1e-5)
    assert float(loss.detach()) != pytest.approx(float(unprompted), rel=1e-3)


def _batch(teacher, seed=0):
    return {"class_labels": torch.tensor([0, 1, 2, 3]), "noise": torch.randn(4, 2), "clean": torch.randn(4, 2),
            "step": 0, "scheduler": SCHEDULER, "null_class": 4, "generator": torch.Generator().manual_seed(seed),
            "teacher": teacher}


def test_zero_cfg_trains_the_fake_score_on_the_empty_prompt():
    from distillbench.methods.diffusion.critic import critic_denoising_loss

    torch.manual_seed(0)
    teacher = PointDenoiser(classes=4, hidden=16, layers=1).requires_grad_(False)
    method = SiD(critic_prompted=False, fake_guidance=0.0)
    module = method.training_module(PointDenoiser(classes=4, hidden=16, layers=1))
    batch = _batch(teacher)
    sample = method.generator_sample(module.generator, {**batch, "generator": torch.Generator().manual_seed(0)})
    draws = torch.Generator().manual_seed(0)
    method.generator_sample(module.generator, {**batch, "generator": draws})  # the draws the loss makes first
    state = draws.get_state()
    expected = critic_denoising_loss(module.critic, SCHEDULER, sample.detach(), None, draws)
    prompted = critic_denoising_loss(module.critic, SCHEDULER, sample.detach(), batch["class_labels"],
                                     torch.Generator().set_state(state))
    critic_term = float(method.loss(module, batch)["critic"].detach())
    assert critic_term == pytest.approx(float(expected.detach()), rel=1e-6)
    assert critic_term != pytest.approx(float(prompted.detach()), rel=1e-4)
    assert "fake_guidance" in " ".join(SiD(critic_prompted=False).check())  # an untrained prompted branch


def test_few_step_sid_trains_a_shared_generator_on_its_own_rollouts():
    """Few-step SiD: k ~ U{1..K}, the first k − 1 steps without gradient; the generator still gets a gradient."""
    torch.manual_seed(0)
    teacher = PointDenoiser(classes=4, hidden=16, layers=1).requires_grad_(False)
    method = SiD(generator_steps=4, backward_simulation=True)
    assert method.check() == []
    module = method.training_module(PointDenoiser(classes=4, hidden=16, layers=1))
    for seed in range(6):  # whichever of its steps the draw picks
        terms = method.loss(module, _batch(teacher, seed))
        module.zero_grad()
        terms["score_identity"].backward()
        assert sum(float(p.grad.abs().sum()) for p in module.generator.parameters()) > 0
    assert SiD(generator_steps=1, backward_simulation=True).check()  # a one-step generator has nothing to simulate
