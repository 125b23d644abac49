"""The pocket text-to-image teacher (tiny spec): build, verify, CFG sampling with NFE, and scoring its images."""

import json

import numpy as np
import pytest

from distillbench.pocket import t2i_zoo


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DISTILLBENCH_ZOO_SCALE", "tiny")
        patch.setenv("DISTILLBENCH_CACHE", str(cache))
        yield t2i_zoo.model_dir("t2i-teacher")


def test_build_is_verified_and_deterministic(tiny_teacher, tmp_path):
    from diffusers import UNet2DConditionModel

    assert t2i_zoo.verify(tiny_teacher) == []
    manifest = json.loads((tiny_teacher / t2i_zoo.MANIFEST).read_text())
    assert manifest["spec_hash"] in tiny_teacher.name and "unet/diffusion_pytorch_model.safetensors" in manifest["sha256"]
    assert isinstance(UNet2DConditionModel.from_pretrained(tiny_teacher / "unet"), UNet2DConditionModel)
    spec = t2i_zoo.TINY_SPECS["t2i-teacher"]
    unet, text_encoder, tokenizer, report = t2i_zoo.train(spec, log=None)
    again = t2i_zoo.save(unet, text_encoder, tokenizer, spec, report, tmp_path / "again")
    weights = "unet/diffusion_pytorch_model.safetensors"
    assert json.loads((again / t2i_zoo.MANIFEST).read_text())["sha256"][weights] == manifest["sha256"][weights]
    pipeline_config = again / "t2i.json"
    pipeline_config.write_text("{}")
    assert any("sha256 mismatch" in problem for problem in t2i_zoo.verify(again))


def test_pixel_rearrangement_round_trips():
    images = np.random.default_rng(0).integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    assert t2i_zoo.to_model_space(images, 2).shape == (3, 12, 16, 16)
    assert np.array_equal(t2i_zoo.from_model_space(t2i_zoo.to_model_space(images, 2), 2), images)


def test_sampling_counts_nfe_and_is_batch_invariant(tiny_teacher):
    from distillbench.kinds.text_to_image.sampling import TextToImage

    pipeline = TextToImage(tiny_teacher)
    prompts = ["a photo of a red circle", "a photo of two squares", "a photo of a blue triangle"]
    images, guided = pipeline.generate(prompts, steps=2, guidance=3.0)
    assert len(images) == 3 and images[0].shape == (32, 32, 3) and images[0].dtype == np.uint8
    assert guided.nfe == 4 and guided.seconds_per_image > 0
    assert pipeline.generate(prompts, steps=2, guidance=1.0)[1].nfe == 2  # no unconditional branch
    one_by_one, _ = pipeline.generate(prompts, steps=2, guidance=3.0, batch_size=1)
    assert all(np.abs(a.astype(int) - b).max() <= 1 for a, b in zip(images, one_by_one))
    euler, _ = pipeline.generate(prompts, steps=2, sampler="euler")
    assert len(euler) == 3


@pytest.mark.parametrize("sampler", ["ddim", "euler"])
def test_one_step_starts_from_pure_noise(tiny_teacher, sampler):
    """Trailing timesteps: one step samples at t = 999 (diffusers' default 'leading' spacing gives t = 0)."""
    from distillbench.kinds.text_to_image.sampling import TextToImage

    scheduler = TextToImage(tiny_teacher).scheduler(sampler)
    scheduler.set_timesteps(1)
    assert float(scheduler.timesteps[0]) == pytest.approx(999)
    scheduler.set_timesteps(2)
    assert [round(float(t)) for t in scheduler.timesteps] == [999, 499]


def test_generate_and_score_a_benchmark(tiny_teacher, tmp_path):
    from distillbench.core.recipe import validate_options
    from distillbench.core.registry import BENCHMARKS
    from distillbench.core.score_only import score_predictions
    from distillbench.kinds.text_to_image.sampling import TextToImage, generate_for_benchmark

    options = {"per_tag": 1, "samples_per_prompt": 1}
    benchmark, _ = validate_options(BENCHMARKS.get("pocket-geneval"), options, "pocket-geneval")
    predictions, cost = generate_for_benchmark(TextToImage(tiny_teacher), benchmark, tmp_path, steps=1)
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert [row["id"] for row in rows] == [item["id"] for item in benchmark.items()] and cost.nfe == 2
    results = score_predictions("pocket-geneval", predictions, options)
    assert 0.0 <= results["metrics"]["overall"]["mean"] <= 1.0 and len(results["per_item"]) == len(rows)


def test_image_board_rows_carry_set_metrics_and_sampling_cost(tiny_teacher, tmp_path):
    from distillbench.pocket.image_board import Sampling, run

    options = {"pocket-geneval": {"per_tag": 1, "samples_per_prompt": 1}, "pocket-fid": {"samples": 4, "ci_resamples": 5},
               "pocket-kid": {"samples": 4, "ci_resamples": 0}, "pocket-clip-score": {"samples": 4}}
    board = run(tmp_path, str(tiny_teacher), [Sampling(steps=1, guidance=3.0)], options, "test", log=None)
    (row,) = board["rows"]
    assert row["row"] == "teacher@1" and row["cost"]["nfe"] == 2 and row["cost"]["sampling_seconds_per_image"] > 0
    assert row["metrics"]["pocket-fid/fid"]["n"] == 4 and len(row["metrics"]["pocket-fid/fid"]["ci95"]) == 2
    assert row["metrics"]["pocket-kid/kid"]["ci95"] is None  # no CI asked for: none shown
    assert {"pocket-geneval/overall", "pocket-clip-score/clip_score"} <= set(row["metrics"])
    assert board["protocols"]["pocket-fid"]["set_metrics"] == ["fid"]
    assert "Generated by `test`" in (tmp_path / "leaderboard.md").read_text()
