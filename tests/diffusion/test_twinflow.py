"""TwinFlow (methods/diffusion/twinflow.py): RCGM's consistency target against a naive loop and against an exact
flow map (where it is the prediction itself), the weights, the rectification's gradient, the flow-map model's
sampling, saving and loading, and a run."""

import math

import pytest
import torch

from tests.diffusion.conftest import run_points
from distillbench.kinds.diffusion.points import (FlowMapDenoiser, Mixture, PointDenoiser, PointModel, load_point_model,
                                                 save_point_model, solve)
from distillbench.methods.diffusion.twinflow import TwinFlow, pseudo_huber, rcgm_target, time_weight


def _reference(state, start, end, labels):
    """A made-up map with every argument in play, to check the arithmetic."""
    return 0.5 * state + (start * 2 - end).view(-1, 1) + labels.view(-1, 1) * 0.1


def _naive_target(prediction, noisy, t, s, velocity, labels, delta, order):
    rows = []
    for p, x, ti, si, v, y in zip(prediction, noisy, t.tolist(), s.tolist(), velocity, labels):
        state, middle, displacement = x - delta * v, max(ti - delta, si), torch.zeros_like(x)
        for index in range(order):
            a = middle + (si - middle) * index / order
            b = middle + (si - middle) * (index + 1) / order
            jump = _reference(state[None], torch.tensor([a]), torch.tensor([b]), y[None])[0] * (a - b)
            displacement, state = displacement + jump, state - jump
        residual = ((ti - si) * p - displacement - delta * v) / delta if ti - si >= delta else p - v
        rows.append(p - residual.clamp(-1, 1))
    return torch.stack(rows)


def test_the_rcgm_target_matches_a_naive_loop():
    torch.manual_seed(0)
    prediction, noisy, velocity = torch.randn(5, 2), torch.randn(5, 2), torch.randn(5, 2)
    t, s = torch.tensor([1.0, 0.7, 0.5, 0.3, 0.2]), torch.tensor([0.0, 0.1, 0.495, 0.299, 0.0])  # two within Δ
    labels = torch.tensor([0, 1, 2, 3, 4])
    expected = _naive_target(prediction, noisy, t, s, velocity, labels, 0.01, 2)
    assert torch.allclose(rcgm_target(prediction, _reference, noisy, t, s, velocity, labels, 0.01, 2), expected,
                          atol=1e-6)


def test_an_exact_flow_map_is_its_own_target():
    """One data point x₀: the path x_t = t z + (1 − t) x₀ is straight, every jump's average velocity is
    (x_t − x₀)/t, and F = z − x₀ is consistent, so RCGM's residual is 0 and the target is F."""
    x0, z = torch.tensor([[0.3, -0.2]]).repeat(4, 1), torch.randn(4, 2)
    t, s = torch.tensor([1.0, 0.8, 0.5, 0.4]), torch.tensor([0.0, 0.3, 0.45, 0.0])
    noisy = t.view(-1, 1) * z + (1 - t.view(-1, 1)) * x0
    exact = lambda state, start, end, labels: (state - x0) / start.view(-1, 1)  # noqa: E731
    target = rcgm_target(z - x0, exact, noisy, t, s, z - x0, None, 0.01, 2)
    assert torch.allclose(target, z - x0, atol=1e-5)


def test_the_weights_and_the_distance():
    assert float(time_weight(torch.tensor(1.0), torch.tensor(0.0))) == pytest.approx(1.0)
    assert float(time_weight(torch.tensor(0.5), torch.tensor(0.5))) == pytest.approx(math.tan(math.pi / 2.5) + 1)
    assert float(pseudo_huber(torch.tensor([[3.0, 4.0]]), 1e-3)[0]) == pytest.approx(math.sqrt(25 + 1e-6) - 1e-3)


def test_the_rectification_moves_the_one_step_jump_by_the_clipped_gap():
    """ρ(F − sg(F − g)): its gradient in F is g / √(‖g‖² + c²) per sample (over the batch mean)."""
    torch.manual_seed(0)
    method = TwinFlow()
    model = FlowMapDenoiser(classes=4, hidden=16, layers=1)
    noise, labels = torch.randn(3, 2), torch.tensor([0, 1, 4])
    one_step = model(noise, 1.0, 0.0, labels).detach().requires_grad_(True)
    method.rectification(model, one_step, noise, labels, torch.Generator().manual_seed(1)).backward()
    draws = torch.Generator().manual_seed(1)
    with torch.no_grad():
        tau = torch.rand(3, generator=draws)
        noisy = tau.view(-1, 1) * torch.randn(3, 2, generator=draws) + (1 - tau.view(-1, 1)) * (noise - one_step)
        gap = (model(noisy, -tau, -tau, labels) - model(noisy, tau, tau, labels)).clamp(-1, 1)
    expected = gap / torch.sqrt((gap**2).sum(1, keepdim=True) + 1e-6) / 3
    assert torch.allclose(one_step.grad, expected, atol=1e-6)


def test_a_step_trains_the_flow_map_and_evaluates_no_teacher():
    torch.manual_seed(0)
    method = TwinFlow()
    module = method.training_module(PointDenoiser(classes=4, hidden=16, layers=1))
    assert isinstance(module.student, FlowMapDenoiser) and module.student.config.hidden == 16
    batch = {"clean": torch.randn(8, 2), "noise": torch.randn(8, 2), "class_labels": torch.tensor([0, 1, 2, 3, 4, 0, 1, 4]),
             "generator": torch.Generator().manual_seed(0), "step": 0}
    terms = method.loss(module, batch)
    assert set(terms) == {"flow", "rectify"} and method.teacher_forwards(batch) == 0
    sum(terms.values()).backward()
    assert sum(float(p.grad.abs().sum()) for p in module.student.parameters()) > 0
    assert all(p.grad is None for p in module.target.parameters())


def test_a_flow_map_samples_by_jumps_and_round_trips_its_folder(tmp_path):
    torch.manual_seed(0)
    model, noise, labels = FlowMapDenoiser(classes=4, hidden=16, layers=1), torch.randn(4, 2), torch.tensor([0, 1, 2, 4])
    one = solve(model, {}, noise, 1, labels)
    assert torch.allclose(one, noise - model(noise, 1.0, 0.0, labels))
    middle = noise - 0.5 * model(noise, 1.0, 0.5, labels)
    assert torch.allclose(solve(model, {}, noise, 2, labels), middle - 0.5 * model(middle, 0.5, 0.0, labels), atol=1e-6)
    save_point_model(model, PointModel({"num_train_timesteps": 1000}, Mixture(((0.0, 0.0),), 0.1, (1.0,), (0,))),
                     tmp_path)
    loaded, _ = load_point_model(tmp_path)
    assert isinstance(loaded, FlowMapDenoiser) and torch.equal(solve(loaded, {}, noise, 1, labels), one)


def test_a_twinflow_cell_trains_from_data_and_is_scored_at_one_step(tmp_path):
    board = run_points(tmp_path, ["twinflow"], [{"name": "points-2d", "steps": 1, "n": 32}])
    row = next(row for row in board["rows"] if row["row"] == "twinflow")
    assert row["cost"]["teacher_forwards"] == 0 and "points-2d/high_quality" in row["metrics"]
    model, _ = load_point_model(next((tmp_path / "out" / "cells").glob("twinflow*")) / "model")
    assert isinstance(model, FlowMapDenoiser)
