"""The pocket text-to-image teacher (tiny spec): build, verify, CFG sampling with NFE, scoring its images, and the
text-to-image kind running a recipe of sampler rows."""

import json
from pathlib import Path

import numpy as np
import pytest

from distillbench.pocket import t2i_zoo

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_teacher(tiny_t2i_teacher):
    return tiny_t2i_teacher


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
    from distillbench.kinds.diffusion.sampling import from_model_space, to_model_space

    images = np.random.default_rng(0).integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    assert to_model_space(images, 2).shape == (3, 12, 16, 16)
    assert np.array_equal(from_model_space(to_model_space(images, 2), 2), images)


def test_sampling_counts_nfe_and_is_batch_invariant(tiny_teacher):
    from distillbench.kinds.diffusion.sampling import TextToImage

    pipeline = TextToImage.load(tiny_teacher)
    prompts = ["a photo of a red circle", "a photo of two squares", "a photo of a blue triangle"]
    images, guided = pipeline.generate(prompts, steps=2, guidance=3.0)
    assert len(images) == 3 and images[0].shape == (16, 16, 3) and images[0].dtype == np.uint8
    assert guided.nfe == 4 and guided.seconds_per_image > 0
    assert pipeline.generate(prompts, steps=2, guidance=1.0)[1].nfe == 2  # no unconditional branch
    one_by_one, _ = pipeline.generate(prompts, steps=2, guidance=3.0, batch_size=1)
    assert all(np.abs(a.astype(int) - b).max() <= 1 for a, b in zip(images, one_by_one))
    euler, _ = pipeline.generate(prompts, steps=2, sampler="euler")
    assert len(euler) == 3


@pytest.mark.parametrize("sampler", ["ddim", "euler"])
def test_one_step_starts_from_pure_noise(tiny_teacher, sampler):
    """Trailing timesteps: one step samples at t = 999 (diffusers' default 'leading' spacing gives t = 0)."""
    from distillbench.kinds.diffusion.sampling import TextToImage

    scheduler = TextToImage.load(tiny_teacher).scheduler(sampler)
    scheduler.set_timesteps(1)
    assert float(scheduler.timesteps[0]) == pytest.approx(999)
    scheduler.set_timesteps(2)
    assert [round(float(t)) for t in scheduler.timesteps] == [999, 499]


def test_generate_and_score_a_benchmark(tiny_teacher, tmp_path):
    from distillbench.core.recipe import validate_options
    from distillbench.core.registry import BENCHMARKS
    from distillbench.core.score_only import score_predictions
    from distillbench.kinds.diffusion.sampling import TextToImage, generate_for_benchmark

    options = {"per_tag": 1, "samples_per_prompt": 1}
    benchmark, _ = validate_options(BENCHMARKS.get("pocket-geneval"), options, "pocket-geneval")
    predictions, cost = generate_for_benchmark(TextToImage.load(tiny_teacher), benchmark, tmp_path, steps=1)
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert [row["id"] for row in rows] == [item["id"] for item in benchmark.items()] and cost.nfe == 2
    results = score_predictions("pocket-geneval", predictions, options)
    assert 0.0 <= results["metrics"]["overall"]["mean"] <= 1.0 and len(results["per_item"]) == len(rows)


IMAGE_RECIPE = """
name: tiny-image
kind: text-to-image
teacher: {teacher}
rows:
  - {{label: teacher@1, steps: 1, guidance: 3.0}}
  - {{label: teacher@1-euler, steps: 1, guidance: 1.0, sampler: euler}}
benchmarks:
  - {{name: pocket-geneval, per_tag: 1, samples_per_prompt: 1}}
  - {{name: pocket-fid, samples: 4, ci_resamples: 5}}
  - {{name: pocket-kid, samples: 4, ci_resamples: 0}}
  - {{name: pocket-clip-score, samples: 4}}
leaderboard:
  description: The tiny teacher at one step.
  headline: {{pocket-fid/fid: FID, cost.nfe: NFE}}
output_dir: {out}
"""


def test_the_image_recipe_runs_its_sampler_rows_end_to_end(tiny_teacher, tmp_path, capsys):
    from distillbench.cli.main import main

    recipe = tmp_path / "image.yaml"
    recipe.write_text(IMAGE_RECIPE.format(teacher=tiny_teacher, out=tmp_path / "run"))
    assert main(["run", str(recipe)]) == 0
    board = json.loads((tmp_path / "run" / "leaderboard.json").read_text())
    guided, euler = board["rows"]
    assert guided["row"] == "teacher@1" and guided["kind"] == "reference" and guided["status"] == "complete"
    # a timing: present and not negative (a tiny teacher on a fast machine rounds to 0.0 on the board)
    assert guided["cost"]["nfe"] == 2 and guided["cost"]["sampling_seconds_per_image"] >= 0
    assert euler["cost"]["nfe"] == 1  # no guidance: no unconditional branch
    assert guided["metrics"]["pocket-fid/fid"]["n"] == 4 and len(guided["metrics"]["pocket-fid/fid"]["ci95"]) == 2
    assert guided["metrics"]["pocket-kid/kid"]["ci95"] is None  # no CI asked for: none shown
    assert {"pocket-geneval/overall", "pocket-clip-score/clip_score"} <= set(guided["metrics"])
    assert board["protocols"]["pocket-fid"]["set_metrics"] == ["fid"]
    # FID, KID and CLIP score ask for the same prompts: one set of images per row, beside GenEval's.
    cell = next((tmp_path / "run" / "cells").glob("teacher_1-*"))
    assert len(list(cell.glob("images-*"))) == 2
    text = (tmp_path / "run" / "leaderboard.md").read_text()
    assert "The tiny teacher at one step." in text and "| row | FID | NFE |" in text and "## Every metric" in text
    capsys.readouterr()
    assert main(["run", str(recipe)]) == 0  # everything is in the store: nothing is sampled again
    assert capsys.readouterr().err.count("complete in the store, skipped") == 2
    assert json.loads((tmp_path / "run" / "leaderboard.json").read_text())["rows"][0]["cost"] == guided["cost"]


@pytest.mark.parametrize("change, problem", [
    ("rows: []", "rows: list should have at least 1 item"),
    ("student: pocket:t2i-teacher", "student: not used: the rows sample the teacher"),
    ("teacher: pocket:t2i-nope", "teacher: unknown pocket text-to-image model"),
    ("methods: [sft]\nbudget: {steps: 1, batch_size: 1, learning_rate: 0.1}",
     "methods[0]: sft trains text-lm students, but this recipe's kind is text-to-image"),
    ("methods: [sft]", "methods: methods train within a budget"),
])
def test_image_recipe_problems(tmp_path, capsys, change, problem):
    from distillbench.cli.main import main

    recipe = tmp_path / "image.yaml"
    lines = (REPO / "recipes" / "pocket" / "image.yaml").read_text().splitlines()
    field = change.split(":")[0]
    kept = [line for line in lines if not line.startswith(f"{field}:")]
    if field == "rows":  # the committed rows are the indented lines below `rows:`
        kept = [line for line in kept if not line.startswith("  - {label:")]
    recipe.write_text("\n".join(kept) + "\n" + change + "\n")
    assert main(["run", str(recipe), "--check"]) == 2
    assert problem in capsys.readouterr().err
