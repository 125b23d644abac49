"""The 2-D pocket world's teacher: a diffusers model that saves and loads the diffusers way, samples
deterministically, and separates many-step from one-step sampling even when small."""

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from distillbench.benchmarks.sample_metrics import mode_coverage, precision_recall, sliced_wasserstein
from distillbench.kinds.diffusion.points import SAMPLERS, PointDenoiser, guided, sample_points
from distillbench.pocket import gaussians2d
from distillbench.pocket.gaussians2d import TeacherSpec, grid, load, train

WORLD = grid()


def test_the_pocket_teacher_builds_into_the_cache_and_loads_with_diffusers():
    directory = gaussians2d.model_dir()
    model, scheduler, world = load(directory)
    assert isinstance(model, PointDenoiser) and world == WORLD
    assert DDPMScheduler.from_pretrained(directory / "scheduler").config.prediction_type == "v_prediction"
    again = PointDenoiser.from_pretrained(directory / "denoiser")
    x, t = torch.randn(5, 2), torch.tensor([0, 10, 500, 900, 999])
    assert torch.equal(model(x, t), again(x, t))
    first, second = (sample_points(model, scheduler, 64, steps=4, seed=7) for _ in range(2))
    assert torch.equal(first, second) and not torch.equal(first, sample_points(model, scheduler, 64, 4, seed=8))
    assert gaussians2d.builds.verify(directory, gaussians2d.MANIFEST) == []


def test_guidance_is_the_unconditional_output_moved_towards_the_conditional_one():
    model = PointDenoiser(classes=4, hidden=16, layers=1)
    x, t, labels = torch.randn(3, 2), torch.tensor(400), torch.tensor([0, 1, 3])
    unconditional, conditional = model(x, t), model(x, t, labels)
    assert torch.allclose(guided(model, x, t, labels, 3.0), unconditional + 3.0 * (conditional - unconditional))
    assert torch.equal(guided(model, x, t, labels, 1.0), conditional)
    assert torch.equal(model(x, t), model(x, t, torch.full((3,), 4)))  # no class is the null label


def test_many_steps_cover_the_modes_that_one_step_misses():
    torch.set_num_threads(1)
    model, report = train(TeacherSpec("small", hidden=64, layers=2, steps=800, batch_size=256), log=None)
    scheduler = dict(gaussians2d.training_scheduler().config)
    real, _ = WORLD.sample(1000, seed=1)
    means, weights = np.asarray(WORLD.means), np.asarray(WORLD.weights)
    scores = {}
    for steps in (1, 32):
        points = sample_points(model, scheduler, 1000, steps, seed=3).numpy() * WORLD.scale
        scores[steps] = (*precision_recall(real, points), mode_coverage(points, means, weights, WORLD.std)["modes"],
                         sliced_wasserstein(real, points))
    (precision_1, recall_1, modes_1, swd_1), (precision_32, recall_32, modes_32, swd_32) = scores[1], scores[32]
    assert modes_32 > modes_1 + 0.3 and recall_32 > recall_1 + 0.5, scores
    assert precision_32 > precision_1 and swd_32 < swd_1 / 3, scores


def test_the_teacher_is_a_pocket_model_reference():
    from distillbench.core.models import parse_model_ref, resolve_path

    assert resolve_path(parse_model_ref("pocket:gaussians2d-teacher")) == str(gaussians2d.model_dir())


SCHEDULE = dict(DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                              prediction_type="v_prediction").config)


def test_at_one_step_every_sampler_returns_the_models_prediction_of_x0_from_pure_noise():
    torch.manual_seed(0)
    model = PointDenoiser(classes=4, hidden=16, layers=1)
    noise = torch.randn(32, 2, generator=torch.Generator().manual_seed(5))
    alpha_bar = DDPMScheduler.from_config(SCHEDULE).alphas_cumprod[999]
    with torch.no_grad():
        expected = alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * model(noise, torch.tensor(999))
    for sampler in SAMPLERS:
        # Euler scales the noise by σ_max ≈ 2·10⁴ and the model's input back down: float32 keeps ~3 digits
        tolerance = 5e-3 if sampler == "euler" else 1e-5
        assert torch.allclose(sample_points(model, SCHEDULE, 32, 1, seed=5, sampler=sampler), expected,
                              atol=tolerance), sampler


def test_the_ddim_sampler_is_diffusers_ddim_step_by_step():
    torch.manual_seed(0)
    model = PointDenoiser(classes=4, hidden=16, layers=1)
    scheduler = DDIMScheduler.from_config(SCHEDULE, timestep_spacing="trailing")
    scheduler.set_timesteps(4)
    sample = torch.randn(16, 2, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        for timestep in scheduler.timesteps:
            sample = scheduler.step(model(sample, timestep), timestep, sample).prev_sample
    assert torch.equal(sample_points(model, SCHEDULE, 16, 4, seed=2), sample)
    others = [sample_points(model, SCHEDULE, 16, 4, seed=2, sampler=name) for name in ("dpm-solver++", "euler")]
    assert all(torch.isfinite(points).all() and not torch.equal(points, sample) for points in others)


def test_a_teacher_of_noisy_labels_follows_its_prompt_only_under_guidance():
    """The weak-prompt world: half the labels random, so unguided about 5/8 of a prompt's samples are nearest its
    modes (the conditional density is ½ p(x | c) + ½ p(x)), and guidance sharpens that."""
    torch.set_num_threads(1)
    model, _ = train(TeacherSpec("small", hidden=64, layers=2, steps=800, batch_size=256, label_noise=0.5), log=None)
    scheduler = dict(gaussians2d.training_scheduler().config)
    labels = torch.arange(800) % WORLD.class_count
    share = {}
    for guidance in (1.0, 4.0):
        points = sample_points(model, scheduler, 800, 32, seed=3, class_labels=labels, guidance=guidance).numpy()
        nearest = np.linalg.norm(points[:, None] * WORLD.scale - np.asarray(WORLD.means), axis=2).argmin(1)
        share[guidance] = float(np.mean(np.asarray(WORLD.classes)[nearest] == labels.numpy()))  # nearest mode's prompt
    assert 0.4 < share[1.0] < 0.8 and share[4.0] > share[1.0] + 0.15, share


def test_specs_without_label_noise_keep_the_hash_they_had_before_the_field():
    import dataclasses
    import hashlib
    import json

    clean = TeacherSpec("gaussians2d-teacher")
    before = {name: value for name, value in dataclasses.asdict(clean).items() if name != "label_noise"}
    assert clean.spec_hash() == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:12]
    assert TeacherSpec("gaussians2d-teacher", label_noise=0.5).spec_hash() != clean.spec_hash()
