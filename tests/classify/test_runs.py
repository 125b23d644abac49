"""The classifier path through the harness: recipes, the train loop's guarantees, runs, leaderboards."""

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from distillbench.kinds.image_classifier.classifiers import initialised, save_atomic
from distillbench.cli.main import main
from distillbench.core.errors import UserInputError
from distillbench.kinds.image_classifier.images import ImageBatching
from distillbench.core.recipe import Budget, load_recipe, parse_recipe
from distillbench.core.train import train
from distillbench.methods.classify.dkd import DKD
from distillbench.methods.classify.hinton_kd import HintonKD
from distillbench.pocket.shapes_classifiers import pocket_dataset

REPO = Path(__file__).resolve().parents[2]


def recipe(**changes):
    raw = {"name": "c", "kind": "image-classifier", "teacher": "pocket:shapes-teacher-shape", "student": "arch:shapes-cnn-small",
           "data": {"source": "pocket:shapes-shape", "size": 32, "augment": "flip"},
           "budget": {"steps": 2, "batch_size": 8, "learning_rate": 0.01, "optimizer": "sgd", "weight_decay": 5e-4},
           "methods": ["ce", "hinton-kd"], "benchmarks": [{"name": "top1", "dataset": "pocket:shapes-shape", "n": 16}]}
    raw.update(changes)
    return raw


def problems(raw):
    with pytest.raises(UserInputError) as info:
        parse_recipe(raw, "r.yaml")
    return info.value.problems


def test_a_classifier_recipe_validates_and_lists_the_classify_family(capsys):
    parsed = parse_recipe(recipe())
    assert parsed.kind == "image-classifier" and parsed.budget.max_length is None
    assert main(["list", "methods", "--family", "classify"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("ce", "hinton-kd", "dkd", "dhkd", "pld"))


@pytest.mark.parametrize("change, expected", [
    ({"methods": ["ce", "sft"]}, "methods[1]: sft trains text-lm students, but this recipe's kind is image-classifier"),
    ({"benchmarks": ["pocket-math"]}, "benchmarks[0]: pocket-math scores text-lm students, but this recipe's kind is "
                                      "image-classifier"),
    ({"teacher": "pocket:teacher-sft"}, "teacher: pocket:teacher-sft is not an image classifier "
                                        "(pocket:shapes-teacher-<task>, arch:<name>, or a folder with classifier.json)"),
    ({"student": "arch:resnet8x5"}, "student: unknown classifier architecture 'resnet8x5'; did you mean 'arch:resnet8x4'?"),
    ({"data": {"source": "pocket:shapes-colour"}}, "data.source: unknown pocket dataset; known: pocket:shapes-binary, "
                                                   "pocket:shapes-many, pocket:shapes-shape"),
    ({"budget": {"steps": 2, "batch_size": 8, "learning_rate": 0.1, "teacher_top_k": 5}},
     "budget.teacher_top_k: the top-k logit cache is for language models; image teachers run live"),
    ({"budget": {"steps": 2, "batch_size": 8, "learning_rate": 0.1, "lr_milestones": [5, 3]}},
     "budget.lr_milestones: milestones must be positive, increasing steps"),
    ({"methods": [{"name": "dkd", "beta": -1}]}, "methods[0].beta: must be >= 0"),
])
def test_bad_classifier_recipes_name_the_field(change, expected):
    assert problems(recipe(**change)) == [f"r.yaml: {expected}"]


def test_text_recipes_refuse_classify_methods_and_need_max_length():
    raw = {"name": "t", "kind": "text-lm", "teacher": "pocket:teacher-sft", "student": "pocket:student-init",
           "data": {"source": "pocket:math", "size": 10},
           "budget": {"steps": 1, "batch_size": 2, "learning_rate": 1e-3},
           "methods": ["sft", "dkd"], "benchmarks": ["pocket-math"]}
    assert problems(raw) == [
        "r.yaml: methods[1]: dkd trains image-classifier students, but this recipe's kind is text-lm",
        "r.yaml: budget.max_length: required for language models (tokens per example)"]


def test_new_budget_fields_leave_existing_cell_keys_alone():
    from distillbench.core.plan import make_plan

    base = {"name": "t", "kind": "text-lm", "teacher": "pocket:teacher-sft", "student": "pocket:student-init",
            "data": {"source": "pocket:math", "size": 10},
            "budget": {"steps": 1, "batch_size": 2, "learning_rate": 1e-3, "max_length": 64},
            "methods": ["sft"], "benchmarks": ["pocket-math"]}
    same = {**base, "budget": {**base["budget"], "optimizer": "adamw", "weight_decay": 0.0, "lr_milestones": []}}
    other = {**base, "budget": {**base["budget"], "weight_decay": 0.01}}
    key = lambda raw: make_plan(parse_recipe(raw)).cells[-1].key
    assert key(base) == key(same) != key(other)


def test_a_cell_key_ignores_checkpoint_cadence_and_the_data_files_its_method_never_reads(tmp_path):
    from distillbench.core.plan import make_plan

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"prompt": "1+1?", "chosen": "2", "rejected": "3"}\n')
    base = {"name": "t", "kind": "text-lm", "teacher": "pocket:teacher-sft", "student": "pocket:student-init",
            "data": {"source": "pocket:math", "size": 10, "preferences": "pocket:math-preference"},
            "budget": {"steps": 1, "batch_size": 2, "learning_rate": 1e-3, "max_length": 64},
            "methods": ["sft", "dpo"], "benchmarks": ["pocket-math"]}
    keys = lambda raw: {c.label: c.key for c in make_plan(parse_recipe(raw)).cells if c.kind == "method"}  # noqa: E731
    checkpoints = {**base, "budget": {**base["budget"], "checkpoint_every": 7}}
    other_pairs = {**base, "data": {**base["data"], "preferences": str(pairs)}}
    assert keys(checkpoints) == keys(base)
    assert keys(other_pairs)["sft"] == keys(base)["sft"]
    assert keys(other_pairs)["dpo"] != keys(base)["dpo"]


def test_a_new_loss_version_gets_new_cell_keys_and_version_one_keeps_the_old(monkeypatch):
    from distillbench.core.plan import make_plan
    from distillbench.methods.llm.sft import SFT

    raw = {"name": "t", "kind": "text-lm", "teacher": "pocket:teacher-sft", "student": "pocket:student-init",
           "data": {"source": "pocket:math", "size": 10},
           "budget": {"steps": 1, "batch_size": 2, "learning_rate": 1e-3, "max_length": 64},
           "methods": ["sft"], "benchmarks": ["pocket-math"]}
    key = lambda: make_plan(parse_recipe(raw)).cells[-1].key  # noqa: E731
    before = key()
    monkeypatch.setattr(SFT, "loss_version", 2)
    assert key() != before
    monkeypatch.setattr(SFT, "loss_version", 1)
    assert key() == before


def test_the_committed_boards_cells_keep_their_keys(monkeypatch):
    """Keys are content hashes of the recipe: a change to how they are computed (such as a new key field)
    must leave existing cells' keys alone, or every committed run would retrain from scratch. A deliberate
    change of scheme rewrites the committed boards' keys and rekeys their runs with it (as d373d3e did)."""
    from distillbench.core.plan import make_plan

    monkeypatch.delenv("DISTILLBENCH_ZOO_SCALE", raising=False)  # the shipped teacher the board was run with
    board = json.loads((REPO / "leaderboards/pocket-classify-semi.json").read_text())
    committed = {row["row"]: row["cells"] for row in board["rows"] if row["kind"] == "method"}
    plan = make_plan(load_recipe(REPO / "recipes/pocket/classify-semi.yaml"))
    planned = {}
    for cell in plan.cells:
        if cell.kind == "method":
            planned.setdefault(cell.label, []).append(cell.key)
    assert committed == planned


# --- the train loop ---------------------------------------------------------------------------
@dataclass
class StopAt(HintonKD):
    at: int = 0
    calls: int = 0

    def loss(self, student, batch):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return super().loss(student, batch)


def _train(method, tmp, steps=4):
    data = pocket_dataset("pocket:shapes-many", "train", 40)
    teacher = initialised("shapes-cnn", 30, seed=9).eval()
    student = initialised("shapes-cnn-small", 30, seed=0)
    budget = Budget(steps=steps, batch_size=8, learning_rate=0.05, optimizer="sgd", weight_decay=5e-4,
                    lr_schedule="multistep", lr_milestones=[2], checkpoint_every=1, max_grad_norm=None)
    result = train(method, student, data, budget, 0, tmp / "ckpt", frozen={"teacher": teacher},
                   log_path=tmp / "log.jsonl", batching=ImageBatching(data, "crop-flip", 8))
    return result, student


def test_an_interrupted_classifier_run_resumes_to_the_same_weights(tmp_path):
    straight, model = _train(HintonKD(), tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        _train(StopAt(at=3), tmp_path / "b")
    resumed, again = _train(HintonKD(), tmp_path / "b")
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    log = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3, 4]
    # the rate each step trained at: 0.05, then ×0.1 from step 2 (0-based), the multistep milestone
    assert [entry["lr"] for entry in log] == pytest.approx([0.05, 0.05, 0.005, 0.005])
    assert straight.unit == "images" and straight.tokens == 32 and straight.teacher_forwards == 32


def test_dkd_batches_carry_the_epoch():
    data = pocket_dataset("pocket:shapes-shape", "train", 40)
    batching = ImageBatching(data, "none", 8)
    assert batching.steps_per_epoch == 5
    assert batching.collate(data, [0, 1], 0, 4, 0, "cpu")["epoch"] == 1
    assert batching.collate(data, [0, 1], 0, 5, 0, "cpu")["epoch"] == 2
    assert DKD().needs == ("teacher_logits",)


# --- whole runs ---------------------------------------------------------------------------------
def test_a_pocket_run_scores_every_row_and_resumes(tmp_path, capsys):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe(output_dir=str(tmp_path / "out"), methods=["ce", "hinton-kd", "dhkd"])))
    assert main(["run", str(path)]) == 0
    board = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    rows = {row["row"]: row for row in board["rows"]}
    assert set(rows) == {"teacher", "ce", "hinton-kd", "dhkd"}  # a fresh arch: student has no init row
    assert all(row["metrics"]["top1/accuracy"]["n"] == 16 for row in rows.values())
    assert rows["hinton-kd"]["cost"]["train_images"] == 16 and rows["ce"]["cost"]["teacher_forwards"] == 0
    model_dir = next((tmp_path / "out" / "cells").glob("dhkd-*")) / "model"
    assert json.loads((model_dir / "classifier.json").read_text())["architecture"] == "shapes-cnn-small"
    assert not any(key.startswith("auxiliary") for key in load_file(str(model_dir / "model.safetensors")))
    capsys.readouterr()
    assert main(["run", str(path)]) == 0
    assert "complete in the store, skipped" in capsys.readouterr().err
    assert main(["leaderboard", str(tmp_path / "out"), "--versus", "ce"]) == 0


def test_the_pocket_classify_recipe_is_valid():
    parsed = load_recipe(REPO / "recipes/pocket/classify.yaml")
    assert parsed.kind == "image-classifier" and {m.name for m in parsed.methods} >= {"ce", "hinton-kd", "dkd", "dhkd", "pld"}
    assert len(parsed.seeds) >= 3


@pytest.mark.parametrize("name, teacher, student", [("cifar100-resnet32x4-resnet8x4", "resnet32x4", "resnet8x4"),
                                                    ("cifar100-wrn_40_2-wrn_16_2", "wrn_40_2", "wrn_16_2")])
def test_cifar_paper_recipes_follow_the_standard_recipe_and_run_on_a_cifar_folder(name, teacher, student, tmp_path,
                                                                                   fake_cifar100):
    raw = yaml.safe_load((REPO / f"recipes/papers/{name}.yaml").read_text())
    budget = raw["budget"]
    per_epoch = 50_000 // 64
    assert (budget["steps"], budget["batch_size"], budget["optimizer"], budget["learning_rate"], budget["momentum"],
            budget["weight_decay"], budget["lr_schedule"], budget["lr_decay"]) == (
        240 * per_epoch, 64, "sgd", 0.05, 0.9, 5e-4, "multistep", 0.1)
    assert budget["lr_milestones"] == [150 * per_epoch, 180 * per_epoch, 210 * per_epoch]
    assert raw["data"]["augment"] == "crop-flip" and raw["student"] == f"arch:{student}"
    save_atomic(initialised(teacher, 100, seed=0), tmp_path / "teacher")
    raw.update(teacher=str(tmp_path / "teacher"), output_dir=str(tmp_path / "out"), seeds=[0],
               methods=[m for m in raw["methods"] if (m if isinstance(m, str) else m["name"]) in ("hinton-kd", "dkd")])
    raw["data"]["source"] = str(fake_cifar100)
    raw["benchmarks"][0]["root"] = str(fake_cifar100)
    raw["budget"].update(steps=2, batch_size=8, lr_milestones=[1], checkpoint_every=1)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path)]) == 0
    board = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    assert [row["row"] for row in board["rows"]][0] == "teacher"
    assert all(row["metrics"]["cifar100/accuracy"]["n"] == 24 for row in board["rows"])
    assert main(["leaderboard", str(tmp_path / "out"), "--reported"]) == 0


def test_top1_scores_predictions_made_elsewhere(tmp_path, capsys):
    from distillbench.benchmarks.top1 import Top1

    items = Top1(dataset="pocket:shapes-shape", n=6).items()
    lines = [{"id": item["id"], "response": [item["label"]] if i % 2 == 0 else [(item["label"] + 1) % 3]}
             for i, item in enumerate(items)]
    path = tmp_path / "preds.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main(["score", "top1", "--predictions", str(path), "--dataset", "dataset=pocket:shapes-shape",
                 "--dataset", "n=6", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["metrics"]["accuracy"]["mean"] == 0.5 and "top5" not in results["metrics"]
    assert results["per_item"][1]["reason"].startswith("predicted '")


def test_top5_needs_five_guesses():
    from distillbench.benchmarks.top1 import Top1

    benchmark = Top1(dataset="pocket:shapes-many", n=2)
    item = benchmark.items()[0]
    wrong = [(item["label"] + offset) % 30 for offset in range(1, 6)]
    assert "top5" not in benchmark.score(item, item["label"]).values  # a single index says nothing of the top 5
    assert benchmark.score(item, [*wrong[:4], item["label"]]).values["top5"] == 1.0
    assert benchmark.score(item, wrong).values["top5"] == 0.0


def test_methods_asking_for_features_get_the_teachers_penultimate_features():
    data = pocket_dataset("pocket:shapes-many", "train", 16)
    teacher = initialised("shapes-cnn", 30, seed=2).eval()
    batching = ImageBatching(data, "flip", 8)
    batch = batching.collate(data, list(range(8)), 0, 0, 0, "cpu")

    class NeedsFeatures:
        needs = ("teacher_features",)

    assert batching.add_signals(batch, NeedsFeatures(), {"teacher": teacher}) == 8
    assert batch["teacher_features"].shape == (8, 128) and batch["teacher_logits"].shape == (8, 30)
    with torch.no_grad():
        assert torch.allclose(teacher.network.fc(batch["teacher_features"]), batch["teacher_logits"], atol=1e-5)


def test_reported_cifar_numbers_sit_beside_the_row_of_the_same_student():
    from distillbench.leaderboards.reported import match_reported

    row = {"row": "hinton-kd", "kind": "method", "method": "hinton-kd", "model": "arch:wrn_16_2",
           "metrics": {"cifar100/accuracy": {"mean": 0.75, "ci95": [0.74, 0.76], "n": 10000}}}
    matches, _ = match_reported({"rows": [row], "recipe": {"teacher": "teachers/wrn_40_2"}})
    assert [m["entry"].student for m in matches] == ["WRN-16-2"]
    assert matches[0]["entry"].printed == "74.92"


def test_top_classes_break_exact_ties_to_the_lower_index_and_rank_nan_last():
    # torch.topk orders exact ties by size and device (all-equal logits over 100 classes gave 65, 68, …)
    from distillbench.core.classes import top_classes

    assert top_classes(torch.zeros(2, 100), 5) == [[0, 1, 2, 3, 4]] * 2
    logits = torch.tensor([[1.0, float("nan"), 3.0, 3.0, 0.5]])
    assert top_classes(logits, 5) == [[2, 3, 0, 4, 1]]
