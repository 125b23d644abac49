"""The pocket AutoDistiller report: the nearest-setting recommendation, and a tiny run that resumes."""

import json

import pytest

from distillbench.pocket import autodistiller_report as report


def test_the_recommendation_is_the_best_pipeline_of_the_nearest_other_setting():
    gains = {"a": {"x": 0.0, "y": 0.3}, "b": {"x": 0.0, "y": 0.2}, "c": {"x": 0.05, "y": 0.0}}
    features = {"a": [0.0, 1.0], "b": [10.0, 1.0], "c": [8.0, 1.0]}
    assert report.recommend(gains, features, "c") == "y"  # b is nearest to c, and y is b's best
    assert report.recommend(gains, features, "a") == "x"  # c is nearest to a; a's own best (y) is never read
    summary = report.summarise([
        {"task": task, "train_size": size, "pipeline": pipeline, "seed": 0, "top1": top1}
        for task, size, by in (("shape", 250, {"ce": 0.5, "hinton-kd": 0.6, "distiller-mi[alpha=0]": 0.55}),
                               ("shape", 1000, {"ce": 0.7, "hinton-kd": 0.72, "distiller-mi[alpha=0]": 0.8}),
                               ("many", 250, {"ce": 0.2, "hinton-kd": 0.3, "distiller-mi[alpha=0]": 0.25}))
        for pipeline, top1 in by.items()])
    rows = {row["setting"]: row for row in summary["settings"]}
    assert rows["shape/250"]["gains"] == {"hinton-kd": pytest.approx(0.1), "distiller-mi[alpha=0]": pytest.approx(0.05)}
    # shape/1000's nearest setting is shape/250 (same classes), whose best is hinton-kd: regret 0.10 − 0.02
    assert rows["shape/1000"]["recommended"] == "hinton-kd" and rows["shape/1000"]["best"] == "distiller-mi[alpha=0]"
    assert summary["mean_regret_default"] == pytest.approx(0.08 / 3, abs=1e-4)
    assert summary["mean_regret_recommended"] == pytest.approx(
        sum(r["best_gain"] - r["recommended_gain"] for r in rows.values()) / 3, abs=1e-4)


def test_each_seed_is_also_compared_on_its_own_cells():
    def cells(seed, kd_gain):
        return [{"task": task, "train_size": 250, "pipeline": pipeline, "seed": seed, "top1": top1}
                for task in ("shape", "many", "binary")
                for pipeline, top1 in (("ce", 0.5), ("hinton-kd", 0.5 + kd_gain), ("distiller-mi[alpha=0]", 0.55))]
    per_seed = report.per_seed_regrets(cells(0, 0.1) + cells(1, 0.0))
    assert per_seed["0"]["mean_regret_default"] == 0 and per_seed["1"]["mean_regret_default"] == pytest.approx(0.05)
    assert report.per_seed_regrets(cells(0, 0.1)) == {}  # one seed: nothing beyond the pooled figures


TINY_RECIPE = """
name: tiny-autodistiller
kind: image-classifier
teacher: pocket:shapes-teacher-many
student: arch:shapes-cnn-small
data: {source: "pocket:shapes-many", size: 250, augment: flip}
budget: {steps: 2, batch_size: 16, learning_rate: 0.01, optimizer: sgd, max_grad_norm: null}
seeds: [0, 1]
methods: [ce, hinton-kd]
benchmarks: [{name: top1, dataset: "pocket:shapes-many", n: 16}]
"""


def test_a_tiny_report_runs_each_setting_as_a_recipe_and_resumes(tmp_path, monkeypatch):
    from distillbench.cli.main import main

    recipe = tmp_path / "autodistiller.yaml"
    recipe.write_text(TINY_RECIPE)
    monkeypatch.setattr(report, "RECIPE", recipe)
    monkeypatch.setattr(report, "TASKS", ("shape", "binary"))
    monkeypatch.setattr(report, "TRAIN_SIZES", (32,))
    out = tmp_path / "board" / "autodistiller.json"
    command = ["report", "autodistiller", "--runs", str(tmp_path / "runs"), "--out", str(out)]
    assert main(command) == 0
    first = json.loads(out.read_text())
    assert len(first["cells"]) == 8 and {r["setting"] for r in first["settings"]} == {"shape/32", "binary/32"}
    assert all(0 <= c["top1"] <= 1 and c["test_size"] == 16 for c in first["cells"])
    assert set(first["per_seed"]) == {"0", "1"} and first["pipelines"] == {"ce": ["ce", {}],
                                                                            "hinton-kd": ["hinton-kd", {}]}
    # Each setting is the recipe switched to its task and size; its cells' top-1 are the store's.
    board = json.loads((tmp_path / "runs" / "tiny-autodistiller-binary-32" / "leaderboard.json").read_text())
    assert (board["recipe"]["teacher"], board["recipe"]["data"]["size"]) == ("pocket:shapes-teacher-binary", 32)
    assert board["protocols"]["top1"]["dataset"] == "pocket:shapes-binary"
    kd = next(row for row in board["rows"] if row["row"] == "hinton-kd")
    assert kd["seed_spread"]["top1/accuracy"]["per_seed"] == pytest.approx(
        {str(c["seed"]): c["top1"] for c in first["cells"]
         if c["task"] == "binary" and c["pipeline"] == "hinton-kd"}, abs=1e-4)
    assert "| shape/32 |" in (tmp_path / "board" / "autodistiller.md").read_text()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr("distillbench.core.kind.train", no_training)
    assert main(command) == 0
    assert json.loads(out.read_text())["settings"] == first["settings"]


def test_the_committed_recipe_checks_and_each_setting_switches_task_and_size(capsys):
    from distillbench.cli.main import main

    assert main(["run", str(report.RECIPE), "--check"]) == 0
    assert "ok: the recipe validates and plans" in capsys.readouterr().out
    recipes = report.AutoDistillerReport().recipes()
    assert [(r.name, r.teacher, r.data.source, r.data.size, r.benchmarks[0].params["dataset"]) for r in recipes[:2]] == [
        ("pocket-autodistiller-many-250", "pocket:shapes-teacher-many", "pocket:shapes-many", 250, "pocket:shapes-many"),
        ("pocket-autodistiller-many-1000", "pocket:shapes-teacher-many", "pocket:shapes-many", 1000, "pocket:shapes-many")]
    assert {(r.data.source, r.data.size) for r in recipes} == {
        (f"pocket:shapes-{task}", size) for task in ("many", "shape", "binary") for size in (250, 1000)}
    assert [spec.label for spec in recipes[0].methods] == ["ce", "hinton-kd", "distiller-mi[alpha=0]",
                                                          "distiller-mi[alpha=0.5]", "distiller-mi[alpha=1]"]
