"""Diversity distillation (methods/diffusion/diversity_distillation.py): hybrid sampling step by step against a
hand-written sampler, the hybrid folder's round trip, and a row that trains nothing on top of a DMD2 student,
whose claim against that student is a controlled comparison."""


import torch
from diffusers import DDPMScheduler

from tests.diffusion.conftest import run_points
from distillbench.kinds.diffusion.points import (HybridDenoiser, Mixture, PointDenoiser, PointModel, load_point_model,
                                                 save_point_model, solve)
from distillbench.leaderboards.claims import _no_verdict

CONFIG = {**DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                          prediction_type="v_prediction", clip_sample=False).config}


def _models():
    torch.manual_seed(0)
    return PointDenoiser(classes=4, hidden=16, layers=1).eval(), PointDenoiser(classes=4, hidden=16, layers=1).eval()


@torch.no_grad()
def test_the_base_takes_the_first_steps_and_the_distilled_model_the_rest():
    base, distilled = _models()
    noise, alphas = torch.randn(5, 2), DDPMScheduler.from_config(CONFIG).alphas_cumprod
    for base_steps in (1, 2):
        hybrid = HybridDenoiser(base, distilled, base_steps)
        sampled = solve(hybrid, CONFIG, noise, 4, sampler="lcm", generator=torch.Generator().manual_seed(1))
        # by hand: x̂₀ of the step's network, re-noised to the next timestep with the sampler's draws
        draws, state = torch.Generator().manual_seed(1), noise
        timesteps = [999, 749, 499, 249]
        for index, t in enumerate(timesteps):
            network = base if index < base_steps else distilled
            a = alphas[t]
            x0 = a.sqrt() * state - (1 - a).sqrt() * network(state, torch.full((5,), t))
            if index == 3:
                state = x0
            else:
                fresh = torch.randn(5, 2, generator=draws)
                state = alphas[timesteps[index + 1]].sqrt() * x0 + (1 - alphas[timesteps[index + 1]]).sqrt() * fresh
        assert torch.allclose(sampled, state, atol=1e-5)
    only_distilled = solve(distilled, CONFIG, noise, 4, sampler="lcm", generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(sampled, only_distilled)


def test_a_hybrid_folder_saves_both_models_and_loads_as_the_hybrid(tmp_path):
    base, distilled = _models()
    world = Mixture(((0.0, 0.0),), 0.1, (1.0,), (0,))
    save_point_model(HybridDenoiser(base, distilled, 2, 1.5), PointModel(CONFIG, world), tmp_path)
    loaded, processor = load_point_model(tmp_path)
    assert isinstance(loaded, HybridDenoiser) and (loaded.base_steps, loaded.base_guidance) == (2, 1.5)
    for original, copy in ((base, loaded.base), (distilled, loaded.distilled)):
        assert all(torch.equal(a, b) for a, b in zip(original.state_dict().values(), copy.state_dict().values()))
    assert processor.world == world


def test_a_hybrid_row_trains_nothing_on_its_dmd2_student_and_its_claim_has_the_exact_control(tmp_path):
    board = run_points(tmp_path, [{"name": "dmd2", "generator_steps": 4, "generator_every": 2},
                                  {"name": "diversity-distillation", "starts_from": "dmd2"}],
                       [{"name": "points-2d", "steps": 4, "sampler": "lcm", "n": 32}],
                       base="recipes/pocket/points-multistep.yaml")
    rows = {row["row"]: row for row in board["rows"]}
    hybrid, student = rows["diversity-distillation[starts_from=dmd2]"], rows["dmd2[generator_every=2,generator_steps=4]"]
    assert hybrid["cost"]["steps"] == 0 and hybrid["cost"]["teacher_forwards"] == 0
    assert hybrid["metrics"]["points-2d/nll"]["mean"] != student["metrics"]["points-2d/nll"]["mean"]  # other samples
    folder = next((tmp_path / "out" / "cells").glob("diversity-distillation*"))
    assert isinstance(load_point_model(folder / "model")[0], HybridDenoiser)
    assert _no_verdict(None, hybrid, student) is None  # the same weights, sampled otherwise
    trained = {**hybrid, "cost": {**hybrid["cost"], "steps": 4}}  # a row that trained on: no control
    assert _no_verdict(None, trained, student).startswith("no control")
