"""The pocket VLM zoo (real LLaVA checkpoints with a real processor) and the vlm kind running its board's recipe."""

import json
from pathlib import Path

import pytest
import torch

from distillbench.kinds.vlm.models import VisionRequest, generate_vlm, load_vlm, render_prompt
from distillbench.pocket import shapes_vlm as world
from distillbench.pocket import vlm_zoo

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    """The tiny-scale zoo, trained into a temporary cache (seconds)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("DISTILLBENCH_ZOO_SCALE", "tiny")
    patch.setenv("DISTILLBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    try:
        yield {name: vlm_zoo.model_dir(name) for name in vlm_zoo.specs()}
    finally:
        patch.undo()


def test_tiny_build_is_a_real_llava_with_a_real_processor(tiny_zoo):
    from transformers import LlavaForConditionalGeneration

    directory = tiny_zoo["teacher"]
    assert vlm_zoo.verify(directory) == []
    manifest = json.loads((directory / vlm_zoo.MANIFEST).read_text())
    assert manifest["spec_hash"] == vlm_zoo.TINY_SPECS["teacher"].spec_hash() and manifest["final_loss"] > 0
    model, processor = load_vlm(str(directory))
    assert isinstance(model, LlavaForConditionalGeneration)
    assert type(processor).__name__ == "LlavaProcessor"
    assert type(processor.image_processor).__name__.startswith("CLIPImageProcessor")
    assert model.config.vision_config.model_type == "clip_vision_model" and model.config.text_config.model_type == "llama"
    scene = world.scenes("test", 1)[0]
    request = VisionRequest((world.render_payload(world.payload(scene.shapes)),), "How many shapes are there?")
    assert render_prompt(processor, request) == "<s><|user|><image>\nHow many shapes are there?<|assistant|>"
    assert len(generate_vlm(model, processor, [request], max_new_tokens=3, batch_size=1)) == 1
    # A second call finds the verified build and does not retrain it.
    assert vlm_zoo.model_dir("teacher") == directory


def test_training_examples_are_what_the_processor_makes(tiny_zoo):
    _, processor = load_vlm(str(tiny_zoo["student-init"]))
    for conversation in world.training_conversations(6, 3)[:9]:
        example = vlm_zoo.encode(conversation, processor)
        text = processor.apply_chat_template(vlm_zoo.messages(conversation), tokenize=False)
        images = [world.render_payload(frame) for frame in conversation.frames]
        batch = processor(images=images, text=[text], add_special_tokens=False, return_tensors="pt")
        assert torch.equal(batch["input_ids"][0], example["input_ids"])
        assert torch.allclose(batch["pixel_values"], example["pixel_values"], atol=1e-5)
        # The loss sees the assistant replies and their eos, nothing else.
        labelled = processor.tokenizer.decode(example["labels"][example["labels"] != -100])
        assert labelled == "".join(reply + "</s>" for _, reply in conversation.turns)


def test_patch_objects_labels_each_patch_with_the_object_covering_most_of_it():
    red_square, blue_square = world.OBJECTS.index(("red", "square")), world.OBJECTS.index(("blue", "square"))
    background = len(world.OBJECTS)
    labels = vlm_zoo.patch_objects([["square", "red", 6, 6, 5]], patch_size=8)  # pixels 6..10 of both axes
    assert labels.shape == (16,)
    assert [i for i in range(16) if labels[i] == red_square] == [0, 1, 4, 5]
    assert (labels == background).sum() == 12
    # Patch 1 (columns 8..15 of rows 0..7) holds 3×5 red pixels and 4×7 blue ones.
    labels = vlm_zoo.patch_objects([["square", "red", 6, 0, 5], ["square", "blue", 12, 0, 7]], patch_size=8)
    assert labels[0] == red_square and labels[1] == blue_square and labels[2] == blue_square


def test_length_grouped_batches_cover_an_epoch_once():
    import random

    lengths = [100 + (i % 7) * 20 for i in range(100)]
    batches = vlm_zoo.length_grouped_batches(lengths, 8, random.Random(0), window=4)
    assert sorted(i for batch in batches for i in batch) == list(range(100))
    spreads = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches]
    assert sum(spreads) / len(spreads) < 40  # unsorted batches of 8 span about 110


@pytest.mark.parametrize("name", list(vlm_zoo.FULL_SPECS))
def test_the_shipped_zoo_matches_its_spec_and_loads(name):
    directory = vlm_zoo.PACKAGED / name
    manifest = json.loads((directory / vlm_zoo.MANIFEST).read_text())
    spec = vlm_zoo.FULL_SPECS[name]
    assert manifest["spec_hash"] == spec.spec_hash(), "rebuild: python -m distillbench.pocket.vlm_zoo --export"
    assert manifest["rebuild"] == "python -m distillbench.pocket.vlm_zoo --export"
    assert vlm_zoo.verify(directory) == []
    assert sum(f.stat().st_size for f in directory.iterdir()) < 8 * 2**20
    model, processor = load_vlm(str(directory))
    assert model.config.text_config.hidden_size == spec.text_hidden
    assert model.config.vision_config.hidden_size == spec.vision_hidden
    assert processor.tokenizer.convert_tokens_to_ids("<image>") == model.config.image_token_index


def test_the_teacher_is_larger_than_the_student():
    teacher, student = vlm_zoo.FULL_SPECS["teacher"], vlm_zoo.FULL_SPECS["student-init"]
    teacher_size = json.loads((vlm_zoo.PACKAGED / "teacher" / vlm_zoo.MANIFEST).read_text())["parameters"]
    student_size = json.loads((vlm_zoo.PACKAGED / "student-init" / vlm_zoo.MANIFEST).read_text())["parameters"]
    assert teacher_size > 3 * student_size
    assert teacher.steps > student.steps and teacher.text_layers > student.text_layers


VLM_RECIPE = """
name: tiny-vlm
kind: vlm
teacher: {teacher}
student: {student}
benchmarks:
  - {{name: pocket-vqa, n: 2, max_new_tokens: 3}}
  - {{name: pocket-pope, n: 2, max_new_tokens: 3}}
  - {{name: pocket-chair, n: 2, max_new_tokens: 4}}
  - {{name: pocket-videohallucer, n: 1, max_new_tokens: 3}}
leaderboard:
  headline: {{pocket-vqa/accuracy: VQA acc, pocket-pope/average/accuracy: POPE acc}}
  versus: {versus}
output_dir: {out}
"""


def _vlm_recipe(tmp_path, zoo, versus="student-init") -> Path:
    recipe = tmp_path / "vlm.yaml"
    recipe.write_text(VLM_RECIPE.format(teacher=zoo["teacher"], student=zoo["student-init"], versus=versus,
                                        out=tmp_path / "run"))
    return recipe


def test_the_vlm_recipe_scores_the_zoo_through_the_runner(tiny_zoo, tmp_path, capsys):
    from distillbench.cli.main import main
    from distillbench.core.recipe import load_recipe

    recipe = _vlm_recipe(tmp_path, tiny_zoo)
    assert main(["run", str(recipe)]) == 0
    board = json.loads((tmp_path / "run" / "leaderboard.json").read_text())
    assert [row["row"] for row in board["rows"]] == ["teacher", "student-init"]
    headline = load_recipe(ROOT / "recipes" / "pocket" / "vlm.yaml").leaderboard.headline  # the committed board's
    for row in board["rows"]:
        assert row["status"] == "complete" and set(headline) <= set(row["metrics"])
    text = (tmp_path / "run" / "leaderboard.md").read_text()
    assert text.startswith("# Leaderboard: tiny-vlm") and "| row | VQA acc | POPE acc |" in text
    assert "## Head to head against `student-init`" in text and "| teacher | pocket-vqa/accuracy |" in text
    # The run directory is an ordinary one: the leaderboard command reads it, a second run recomputes nothing.
    assert main(["leaderboard", str(tmp_path / "run"), "--versus", "student-init", "--format", "markdown"]) == 0
    capsys.readouterr()
    assert main(["run", str(recipe)]) == 0
    assert capsys.readouterr().err.count("complete in the store, skipped") == 2


def test_a_versus_row_the_recipe_lacks_is_refused(tiny_zoo, tmp_path, capsys):
    from distillbench.cli.main import main

    assert main(["run", str(_vlm_recipe(tmp_path, tiny_zoo, versus="ce")), "--check"]) == 2
    assert "leaderboard.versus: no row 'ce'; rows: teacher, student-init" in capsys.readouterr().err


def test_the_committed_leaderboard_has_the_calibration():
    """The shipped teacher answers more pocket-vqa questions than the shipped student init and hallucinates
    less: fewer false yeses on pocket-pope, fewer invented objects on pocket-chair (leaderboards/pocket-vlm.json)."""
    board = json.loads((ROOT / "leaderboards" / "pocket-vlm.json").read_text())
    rows = {row["row"]: row["metrics"] for row in board["rows"]}
    teacher, student = rows["teacher"], rows["student-init"]

    def above(metric, lower, higher):
        assert lower[metric]["ci95"][1] < higher[metric]["ci95"][0], metric

    above("pocket-vqa/accuracy", student, teacher)
    above("pocket-pope/average/precision", student, teacher)
    above("pocket-pope/average/yes_ratio", teacher, student)
    above("pocket-chair/chair_i", teacher, student)
    above("pocket-chair/chair_s", teacher, student)
    assert teacher["pocket-pope/average/accuracy"]["mean"] > student["pocket-pope/average/accuracy"]["mean"]
