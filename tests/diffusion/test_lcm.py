"""LCM (methods/diffusion/lcm.py) against diffusers: the boundary scalings, the teacher's DDIM step, the loss
against a naive form, the EMA target, and a gradient that reaches the student only."""

from types import SimpleNamespace

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, LCMScheduler

from distillbench.kinds.diffusion.points import PointDenoiser
from distillbench.methods.diffusion.lcm import LCM, boundary_scalings, consistency_loss, ddim_step
from tests.conftest import assert_same_value_and_gradients, leaf_copies

SCHEDULER = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")


def test_the_boundary_scalings_are_diffusers():
    scheduler = LCMScheduler()  # sigma_data 0.5, timestep_scaling 10
    for timestep in (0, 1, 19, 20, 499, 999):
        c_skip, c_out = boundary_scalings(torch.tensor([timestep]))
        expected = scheduler.get_scalings_for_boundary_condition_discrete(timestep)
        assert (float(c_skip), float(c_out)) == pytest.approx(tuple(float(v) for v in expected), rel=1e-6)


@pytest.mark.parametrize("loss", ["huber", "l2"])
def test_the_loss_matches_its_naive_form_in_value_and_gradient(loss):
    torch.manual_seed(0)
    tensors = (torch.randn(5, 2), torch.randn(5, 2))
    fast, slow = leaf_copies(*tensors), leaf_copies(*tensors)

    def naive(prediction, target):
        values = [((p - t) ** 2 + 1e-6) ** 0.5 - 1e-3 if loss == "huber" else (p - t) ** 2
                  for p, t in zip(prediction.flatten(), target.flatten())]
        return torch.stack(values).mean()

    assert_same_value_and_gradients(consistency_loss(*fast, loss), naive(*slow), fast, slow)


def test_the_teachers_step_is_diffusers_ddim_step():
    torch.manual_seed(0)
    noisy, velocity = torch.randn(4, 2), torch.randn(4, 2)
    start = torch.tensor([59, 399, 799, 999])
    end = start - 1000 // LCM().ddim_steps
    ddim = DDIMScheduler.from_config(SCHEDULER.config, clip_sample=False)
    ddim.set_timesteps(LCM().ddim_steps)
    expected = torch.stack([ddim.step(velocity[i], int(start[i]), noisy[i]).prev_sample for i in range(4)])
    assert torch.allclose(ddim_step(SCHEDULER, noisy, velocity, start, end), expected, atol=1e-6)


def test_the_ema_target_moves_toward_the_student_and_only_the_student_trains():
    torch.manual_seed(0)
    method = LCM(ema_decay=0.9)
    module = method.training_module(PointDenoiser(classes=4, hidden=16, layers=1))
    teacher = PointDenoiser(classes=4, hidden=16, layers=1).requires_grad_(False)
    batch = {"class_labels": torch.tensor([0, 1, 2, 4]), "clean": torch.randn(4, 2), "step": 0, "scheduler": SCHEDULER,
             "generator": torch.Generator().manual_seed(0), "teacher": teacher, "noise": torch.randn(4, 2)}
    method.loss(module, batch)["consistency"].backward()
    assert sum(float(p.grad.abs().sum()) for p in module.student.parameters()) > 0
    assert all(p.grad is None for p in [*module.target.parameters(), *teacher.parameters()])
    before = [p.clone() for p in module.target.parameters()]
    with torch.no_grad():
        for p in module.student.parameters():
            p.add_(1.0)
    method.after_step(SimpleNamespace(unwrapped=module))
    for old, new, online in zip(before, module.target.parameters(), module.student.parameters()):
        assert torch.allclose(new, 0.9 * old + 0.1 * online)
