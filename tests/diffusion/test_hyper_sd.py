"""Hyper-SD's TSCD (methods/diffusion/hyper_sd.py): segment edges, the target times, the loss against a naive
form in value and gradient, the stages' segment counts, and a cell end to end on the multi-step recipe."""

import json
from types import SimpleNamespace

import pytest
import torch
from diffusers import DDPMScheduler

from tests.diffusion.conftest import run_points
from distillbench.kinds.diffusion.points import PointDenoiser
from distillbench.methods.diffusion.hyper_sd import HyperSD, segment_ends, segment_start

SCHEDULER = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                          clip_sample=False)


def test_a_segment_starts_at_the_multiple_of_t_over_k_below_t():
    timesteps = torch.tensor([0, 124, 125, 874, 999])
    assert segment_start(timesteps, 1000, 8).tolist() == [0, 0, 125, 750, 875]
    assert segment_start(timesteps, 1000, 1).tolist() == [0, 0, 0, 0, 0]
    assert segment_start(torch.tensor([400, 700]), 1000, 3).tolist() == [333, 666]


def test_the_target_time_lies_in_the_segment_between_its_start_and_the_teachers_step():
    start = torch.tensor([999] * 400 + [149] * 10)
    previous = start - 25
    ends = segment_ends(start, previous, 1000, 8, torch.Generator().manual_seed(0))
    assert ends[:400].min() == 875 and ends[:400].max() == 974  # U{875, …, 974}: both edges reached
    assert ends[400:].tolist() == [124] * 10  # the step left its segment (starts at 125): t_end = t_{n−1}
    whole = segment_ends(start[:400], previous[:400], 1000, 1, torch.Generator().manual_seed(0))
    assert whole.min() < 50 and whole.max() > 920  # k = 1: anywhere down to t = 0 (CTM)


def _jump(x, v, s, e):
    """DDIM from s to e written out: α_e (α_s x − σ_s v) + σ_e (σ_s x + α_s v)."""
    alphas = SCHEDULER.alphas_cumprod
    a_s, a_e = alphas[s].sqrt().unsqueeze(1), alphas[e].sqrt().unsqueeze(1)
    sig_s, sig_e = (1 - alphas[s]).sqrt().unsqueeze(1), (1 - alphas[e]).sqrt().unsqueeze(1)
    return a_e * (a_s * x - sig_s * v) + sig_e * (sig_s * x + a_s * v)


@pytest.mark.parametrize("stage", [0, 3])
def test_the_loss_matches_its_naive_form_in_value_and_gradient(stage):
    torch.manual_seed(0)
    teacher = PointDenoiser(classes=4, hidden=16, layers=1).requires_grad_(False)
    method = HyperSD()
    module = method.training_module(PointDenoiser(classes=4, hidden=16, layers=1))
    for parameter in module.target.parameters():  # an EMA target unlike the student
        parameter.add_(0.05 * torch.randn_like(parameter))
    labels, clean = torch.tensor([0, 1, 2, 4, 4, 3]), torch.randn(6, 2)
    batch = {"class_labels": labels, "clean": clean, "scheduler": SCHEDULER, "teacher": teacher, "stage": stage,
             "generator": torch.Generator().manual_seed(3)}
    loss = method.loss(module, batch)["tscd"]
    # the same draws, in the same order: DDIM index, noise, the target time
    draws = torch.Generator().manual_seed(3)
    s = torch.randint(40, (6,), generator=draws) * 25 + 24
    noise = torch.randn((6, 2), generator=draws)
    k = (8, 4, 2, 1)[stage]
    p = (s - 25).clamp_min(0)
    e = segment_ends(s, p, 1000, k, draws)
    alphas = SCHEDULER.alphas_cumprod
    noisy = alphas[s].sqrt().unsqueeze(1) * clean + (1 - alphas[s]).sqrt().unsqueeze(1) * noise
    with torch.no_grad():
        previous = _jump(noisy, teacher(noisy, s, labels), s, p)
        target = _jump(previous, module.target(previous, p, labels), p, e)
    jump = _jump(noisy, module.student(noisy, s, labels), s, e)
    assert float(loss.detach()) == pytest.approx(float(((jump - target) ** 2).mean().detach()), rel=1e-5)
    student = list(module.student.parameters())
    grads = torch.autograd.grad(loss, student)
    naive = torch.autograd.grad(((jump - target) ** 2).mean(), student)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads, naive))
    assert sum(float(g.abs().sum()) for g in grads) > 0  # the DistillationDPO caution
    assert not any(p.requires_grad for p in module.target.parameters())


def test_each_stage_merges_segments_in_the_papers_order():
    method = HyperSD()
    run = SimpleNamespace(budget=SimpleNamespace(steps=100))
    assert [method.segments[method.stage(run, step)] for step in (0, 24, 25, 50, 99)] == [8, 8, 4, 2, 1]
    assert HyperSD(segments=()).check() == ["segments: one positive count of segments per stage"]


def test_a_hyper_sd_cell_trains_through_its_stages_and_is_scored_with_the_consistency_sampler(tmp_path):
    board = run_points(tmp_path, ["hyper-sd"], [{"name": "points-2d", "steps": 2, "sampler": "lcm", "n": 32}],
                       base="recipes/pocket/points-multistep.yaml")
    (row,) = [row for row in board["rows"] if row["row"] == "hyper-sd"]
    assert row["cost"]["teacher_forwards"] == 4 * 16 and row["metrics"]["points-2d/nfe"]["mean"] == 2.0
    log = [json.loads(line) for line in next((tmp_path / "out" / "cells").glob("hyper-sd*/train_log.jsonl")).open()]
    assert [entry["step"] for entry in log] == [1, 2, 3, 4] and all("tscd" in entry for entry in log)
