"""Image students of the diffusion kind on the tiny pocket text-to-image teacher: the methods train a prompted
UNet, the student saves as a pipeline that diffusers loads unchanged, and the image benchmarks score it at
the steps they name, with NFE per step count."""

import json

import numpy as np
import pytest
import torch
import yaml

from distillbench.cli.main import main
from distillbench.kinds.diffusion.images import PromptedUNet, load_image_pipeline
from distillbench.pocket import t2i_zoo


@pytest.fixture(scope="module")
def tiny_teacher(tiny_t2i_teacher):
    return tiny_t2i_teacher


def image_recipe(tmp_path, teacher, methods, **changes) -> dict:
    recipe = {"name": "tiny-images", "kind": "diffusion", "teacher": str(teacher), "student": str(teacher),
              "data": {"source": "pocket:shapes-scenes", "prompts": 32, "null_fraction": 0.1},
              "budget": {"steps": 3, "batch_size": 4, "learning_rate": 1e-4, "lr_schedule": "constant",
                         "max_grad_norm": 10.0, "checkpoint_every": 2},
              "seeds": [0], "methods": methods,
              "benchmarks": [{"name": "pocket-geneval", "per_tag": 1, "samples_per_prompt": 1, "steps": 1},
                             {"name": "pocket-geneval", "per_tag": 1, "samples_per_prompt": 1, "steps": 2},
                             {"name": "pocket-fid", "samples": 4, "ci_resamples": 0, "steps": 1}],
              "output_dir": str(tmp_path / "out"), **changes}
    path = tmp_path / "images.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_the_prompted_unet_is_the_pipelines_unet_on_the_encoded_prompt(tiny_teacher):
    model, pipeline = load_image_pipeline(tiny_teacher)
    ids = pipeline.prompt_ids(["a photo of a red circle", ""])
    sample, timestep = torch.randn(2, 3, 16, 16), torch.tensor([999, 500])
    with torch.no_grad():
        direct = model.unet(sample, timestep, encoder_hidden_states=model.text_encoder(ids).last_hidden_state).sample
        assert torch.equal(model(sample, timestep, ids), direct)
        assert torch.allclose(model(sample[1:], timestep[1:], None), direct[1:], atol=1e-6)  # None: the empty prompt
    assert model.features(sample, timestep, ids).shape == (2, model.config.hidden)
    assert not any(parameter.requires_grad for parameter in model.text_encoder.parameters())


def test_image_students_train_save_as_diffusers_pipelines_and_score_at_each_step_count(tiny_teacher, tmp_path):
    from diffusers import DiffusionPipeline, StableDiffusionPipeline

    methods = ["lcm", {"name": "dmd2", "gan_generator_weight": 0.01}, "sid"]
    assert main(["run", str(image_recipe(tmp_path, tiny_teacher, methods))]) == 0
    board = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    rows = {row["row"]: row for row in board["rows"]}
    assert set(rows) >= {"teacher", "lcm", "dmd2[gan_generator_weight=0.01]", "sid"}
    for row in rows.values():
        assert row["status"] == "complete"
        geneval = "pocket-geneval[per_tag=1,samples_per_prompt=1,steps={}]/overall"
        assert {geneval.format(1), geneval.format(2), "pocket-fid/fid"} <= set(row["metrics"])
        # guided by the pipeline's default scale: two UNet evaluations per step
        assert row["cost"]["nfe@1"] == 2 and row["cost"]["nfe@2"] == 4
    folder = next((tmp_path / "out" / "cells").glob("sid-*")) / "model"
    saved, trained = (json.loads((path / "scheduler" / "scheduler_config.json").read_text())
                      for path in (folder, tiny_teacher))
    shared = [key for key in trained if not key.startswith("_") and key != "timestep_spacing"]
    assert {key: saved[key] for key in shared} == {key: trained[key] for key in shared}  # diffusers rewrites SD1's
    assert saved["timestep_spacing"] == "trailing"  # one step from pure noise
    pipeline = DiffusionPipeline.from_pretrained(folder, vae=None)  # pixel space: no VAE (diffusers asks for it)
    assert isinstance(pipeline, StableDiffusionPipeline) and pipeline.vae is None
    latents = pipeline("a photo of a red circle", num_inference_steps=1, guidance_scale=1.0, output_type="latent",
                       generator=torch.Generator().manual_seed(0)).images
    assert latents.shape == (1, 3, 16, 16) and torch.isfinite(latents).all()
    # the student is the trained UNet, not the teacher's
    teacher, _ = load_image_pipeline(tiny_teacher)
    student, _ = load_image_pipeline(folder)
    assert isinstance(student, PromptedUNet)
    assert any(not torch.equal(a, b) for a, b in zip(student.unet.parameters(), teacher.unet.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(student.text_encoder.parameters(), teacher.text_encoder.parameters()))


def test_an_image_student_without_a_prompt_source_fails_before_training_with_the_sources_named(
        tiny_teacher, tmp_path, capsys):
    recipe = yaml.safe_load(image_recipe(tmp_path, tiny_teacher, ["lcm"]).read_text())
    recipe["data"].pop("source")
    path = tmp_path / "nosource.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["run", str(path)]) != 0
    assert "data.source: image students need a prompt pool with images: one of pocket:shapes-scenes" in (
        capsys.readouterr().err)
    assert not (tmp_path / "out" / "cells").exists()


def test_the_scene_source_is_deterministic_and_mixes_prompts_and_captions():
    texts, images = t2i_zoo.shapes_scenes(40, seed=0, image_size=16)
    again, same = t2i_zoo.shapes_scenes(40, seed=0, image_size=16)
    assert texts == again and np.array_equal(images, same) and images.shape == (40, 16, 16, 3)
    scenes = t2i_zoo.generate("train", 40, seed=0, image_size=16)
    prompts = sum(text == scene.metadata["prompt"] != scene.caption for text, scene in zip(texts, scenes))
    captions = sum(text == scene.caption != scene.metadata["prompt"] for text, scene in zip(texts, scenes))
    assert prompts >= 10 and captions >= 10


@pytest.mark.parametrize("prediction_type", ["v_prediction", "epsilon", "sample"])
def test_x0_and_noise_read_each_prediction_type_as_diffusers_ddim_does(prediction_type):
    """x̂₀ equals DDIM's pred_original_sample and the methods' critic target is what diffusers trains towards
    (SD1.5 is ε-prediction, the pocket teachers v-prediction)."""
    from diffusers import DDIMScheduler

    from distillbench.methods.diffusion.critic import denoising_target, x0_and_noise

    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                              prediction_type=prediction_type, clip_sample=False)
    scheduler.set_timesteps(4)
    generator = torch.Generator().manual_seed(0)
    clean, noise, output = (torch.randn(3, 4, 8, 8, generator=generator) for _ in range(3))
    timestep = scheduler.timesteps[1]
    noisy = scheduler.add_noise(clean, noise, timestep.expand(3))
    x0, epsilon = x0_and_noise(scheduler, noisy, output, timestep.expand(3))
    expected = scheduler.step(output, timestep, noisy).pred_original_sample
    assert torch.allclose(x0, expected, atol=1e-5)
    # the target of a perfect model: reading it back gives the clean sample and its noise
    target = denoising_target(scheduler, clean, noise, timestep.expand(3))
    back, back_noise = x0_and_noise(scheduler, noisy, target, timestep.expand(3))
    assert torch.allclose(back, clean, atol=1e-4) and torch.allclose(back_noise, noise, atol=1e-4)


def test_sampling_options_enter_an_image_benchmarks_key_only_when_set():
    """Boards keyed before the options existed keep their keys; setting one makes a new column."""
    import dataclasses

    from distillbench.core.plan import benchmark_run
    from distillbench.core.recipe import stable_hash

    plain = benchmark_run("pocket-fid", {})
    before = {field.name: getattr(plain.benchmark, field.name) for field in dataclasses.fields(plain.benchmark)
              if field.name not in ("steps", "guidance", "sampler", "image_size")}
    assert plain.key == stable_hash({"benchmark": "pocket-fid", "options": before,
                                     "scorer": plain.benchmark.scorer_version})
    assert len({plain.key, benchmark_run("pocket-fid", {"steps": 1}).key,
                benchmark_run("pocket-fid", {"image_size": 16}).key}) == 3
    assert plain.benchmark.sampling() == {} and benchmark_run("pocket-fid", {"steps": 4}).benchmark.sampling() == {
        "steps": 4}


def test_a_copy_of_a_prompted_unet_owns_its_networks_and_shares_the_pipeline(tiny_teacher):
    import copy

    model, pipeline = load_image_pipeline(tiny_teacher)
    clone = copy.deepcopy(model)
    assert clone.pipeline is pipeline and clone.unet is not model.unet and clone.text_encoder is not model.text_encoder
    assert all(torch.equal(a, b) for a, b in zip(clone.parameters(), model.parameters()))
    next(clone.unet.parameters()).data.add_(1.0)
    assert not torch.equal(next(clone.unet.parameters()), next(model.unet.parameters()))
    assert torch.equal(clone.empty_ids, model.empty_ids) and clone.config == model.config
