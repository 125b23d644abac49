"""Dataset distillation: CV-DD's committee-voting losses against naive loops (values and gradients), the BN
statistics the hooks record, the committee's vote, recovery, and the dataset-distillation kind run end to end by
`distillbench run` on tiny settings, scored by dd-accuracy."""

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open
from torch import nn
from torch.nn import functional as F

from distillbench.cli.main import main
from distillbench.core.errors import UserInputError
from distillbench.core.plan import make_plan
from distillbench.core.recipe import load_recipe, parse_recipe
from distillbench.core.store import Store
from distillbench.kinds.image_classifier.dataset_distillation.committee import Committee, Expert, committee_logits, committee_weights
from distillbench.kinds.image_classifier.classifiers import initialised
from distillbench.methods.dataset_distillation.cv_dd import (CVDD, BatchNormInputs, bn_statistics_loss,
                                                             committee_recovery_loss, recover_images)
from distillbench.methods.dataset_distillation.random_real import random_real_subset
from distillbench.pocket.shapes_classifiers import pocket_dataset

REPO = Path(__file__).resolve().parents[2]


def test_committee_weights_are_a_softmax_of_priors_over_five():
    weights = committee_weights(torch.tensor([64.0, 60.58]))
    expected = [math.exp(64 / 5) / (math.exp(64 / 5) + math.exp(60.58 / 5))]
    assert math.isclose(weights[0].item(), expected[0], rel_tol=1e-6) and math.isclose(weights.sum().item(), 1.0)


def naive_bn_loss(means, variances, running_means, running_vars, first):
    total = 0.0
    for index in range(len(means)):
        var_gap = math.sqrt(sum((float(r) - float(v)) ** 2 for r, v in zip(running_vars[index], variances[index])))
        mean_gap = math.sqrt(sum((float(r) - float(m)) ** 2 for r, m in zip(running_means[index], means[index])))
        total += (first if index == 0 else 1.0) * (var_gap + mean_gap)
    return total


def test_recovery_loss_matches_a_naive_loop_in_value_and_gradient():
    generator = torch.Generator().manual_seed(0)
    logits = [torch.randn(4, 6, generator=generator, dtype=torch.float64) for _ in range(2)]
    labels = torch.tensor([0, 3, 5, 1])
    means = [torch.randn(3, generator=generator, dtype=torch.float64) for _ in range(2)]
    variances = [torch.rand(3, generator=generator, dtype=torch.float64) for _ in range(2)]
    running_means = [torch.randn(3, generator=generator, dtype=torch.float64) for _ in range(2)]
    running_vars = [torch.rand(3, generator=generator, dtype=torch.float64) for _ in range(2)]
    bn = bn_statistics_loss(means, variances, running_means, running_vars, 10.0)
    assert math.isclose(bn.item(), naive_bn_loss(means, variances, running_means, running_vars, 10.0), rel_tol=1e-12)

    weights = committee_weights(torch.tensor([70.0, 65.0], dtype=torch.float64))
    # logits, batch means and batch variances all carry the synthetic images' gradient
    fast_inputs = [t.clone().requires_grad_() for t in logits + means + variances]
    slow_inputs = [t.clone().requires_grad_() for t in logits + means + variances]

    def fast(inputs):
        bn_losses = [bn_statistics_loss([inputs[2 + i]], [inputs[4 + i]], [running_means[i]], [running_vars[i]], 10.0)
                     for i in range(2)]
        return committee_recovery_loss(inputs[:2], labels, bn_losses, weights, 0.05)

    def slow(inputs):
        total = 0.0
        for i in range(2):
            ce = sum(-torch.log_softmax(inputs[i][b], 0)[labels[b]] for b in range(4)) / 4
            bn_i = 10.0 * (torch.sqrt(((running_vars[i] - inputs[4 + i]) ** 2).sum())
                           + torch.sqrt(((running_means[i] - inputs[2 + i]) ** 2).sum()))
            total = total + weights[i] * (ce + 0.05 * bn_i)
        return total

    a, b = fast(fast_inputs), slow(slow_inputs)
    assert torch.allclose(a, b, atol=1e-12)
    for ga, gb in zip(torch.autograd.grad(a, fast_inputs), torch.autograd.grad(b, slow_inputs)):
        assert torch.allclose(ga, gb, atol=1e-12)
    votes = committee_logits(logits, weights)
    assert torch.allclose(votes, weights[0] * logits[0] + weights[1] * logits[1])


def test_the_hooks_record_each_batchnorm_input_and_match_an_explicit_computation():
    network = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 3), nn.BatchNorm2d(2))
    network.eval()
    images = torch.randn(5, 3, 8, 8)
    recorder = BatchNormInputs(network)
    network(images)
    first_input = network[0](images)
    assert torch.allclose(recorder.means[0], first_input.mean(dim=(0, 2, 3)), atol=1e-6)
    assert torch.allclose(recorder.variances[0], first_input.transpose(0, 1).flatten(1).var(1, unbiased=False), atol=1e-6)
    expected = bn_statistics_loss(recorder.means, recorder.variances, [network[1].running_mean, network[4].running_mean],
                                  [network[1].running_var, network[4].running_var], 10.0)
    assert torch.isclose(recorder.loss(10.0), expected) and recorder.means == []
    recorder.close()


def test_the_committee_votes_with_batch_statistics_and_leaves_the_experts_unchanged():
    experts = [Expert(initialised("shapes-cnn-small", 3, seed), prior) for seed, prior in ((0, 90.0), (1, 80.0))]
    for expert in experts:
        expert.model.eval()
    before = [dict((k, v.clone()) for k, v in e.model.state_dict().items() if "running" in k) for e in experts]
    committee = Committee(experts, 5.0)
    images = torch.randn(6, 3, 32, 32)
    votes, _ = committee.forward_features(images)
    for expert, saved in zip(experts, before):
        assert not expert.model.training
        assert all(torch.equal(expert.model.state_dict()[k], v) for k, v in saved.items() if "num_batches" not in k)
    for expert in experts:
        expert.model.train()
    expected = sum(w * e.model(images) for w, e in zip(committee.weights, experts))
    assert torch.allclose(votes, expected, atol=1e-5)


@pytest.fixture
def tiny_world():
    real = pocket_dataset("pocket:shapes-shape", "train", 60)
    experts = []
    for seed in (0, 1):
        model = initialised("shapes-cnn-small", real.num_classes, seed)
        model.train()
        with torch.no_grad():  # give the BN layers running statistics of real images
            for _ in range(3):
                model(real.batch(range(60)))
        experts.append(Expert(model.eval(), 50.0 + seed))
    return real, experts


def test_recovery_lowers_the_committee_loss_and_keeps_pixels_valid(tiny_world):
    real, experts = tiny_world
    method = CVDD(iterations=15, initialisation="real", jitter=1)
    synthetic = method.distil(real, experts, 2, seed=0)
    assert synthetic.images.dtype == torch.uint8 and len(synthetic) == 2 * real.num_classes
    assert synthetic.labels.tolist() == [0, 1, 2, 0, 1, 2]
    start = recover_images(CVDD(iterations=1, initialisation="real", jitter=1), experts, real, 2, 0)

    def committee_ce(data):
        images = data.batch(range(len(data)))
        return sum(F.cross_entropy(e.model(images), data.labels).item() for e in experts)

    assert committee_ce(synthetic) < committee_ce(start)
    state = torch.get_rng_state()
    again = recover_images(method, experts, real, 2, seed=0)  # deterministic, crops included, and the global
    assert torch.equal(again.images, synthetic.images)      # RNG is left as it was
    assert torch.equal(torch.get_rng_state(), state)
    plain = recover_images(CVDD(iterations=15, initialisation="real", jitter=1, augment=False), experts, real, 2, 0)
    assert not torch.equal(plain.images, synthetic.images)  # the crops and flips change what is recovered


def test_the_random_real_baseline_draws_real_images_of_every_class(tiny_world):
    real, _ = tiny_world
    subset = random_real_subset(real, 2, seed=0)
    assert sorted(subset.labels.tolist()) == [0, 0, 1, 1, 2, 2]
    assert set(subset.ids) <= set(real.ids)
    assert random_real_subset(real, 2, seed=0).ids == subset.ids != random_real_subset(real, 2, seed=1).ids


TINY = """
name: dd-tiny
kind: dataset-distillation
data: {{source: "pocket:shapes-shape", train_size: 48, images_per_class: 2}}
student: arch:shapes-cnn-small
committee:
  - {{architecture: shapes-cnn-small, steps: 2, seed: 0}}
  - {{architecture: shapes-cnn-small, steps: 2, seed: 1}}
budget: {{steps: 2, batch_size: 6, learning_rate: 0.01}}
seeds: [0, 1]
methods: [random-real, random-real-committee, {{name: cv-dd, iterations: 2}}]
benchmarks: [{benchmark}]
output_dir: {out}
"""


def tiny_recipe(tmp_path, benchmark="{name: dd-accuracy, dataset: 'pocket:shapes-shape', n: 20}"):
    path = tmp_path / "dd.yaml"
    path.write_text(TINY.format(benchmark=benchmark, out=tmp_path / "out"))
    return path


def test_a_recipe_runs_end_to_end_through_distillbench_run(tmp_path, capsys):
    assert main(["run", str(tiny_recipe(tmp_path))]) == 0
    out = tmp_path / "out"
    board = json.loads((out / "leaderboard.json").read_text())
    rows = {row["row"]: row for row in board["rows"]}
    assert set(rows) == {"random-real", "random-real-committee", "cv-dd[iterations=2]"}
    assert {row["method"] for row in rows.values()} == {"random-real", "random-real-committee", "cv-dd"}
    for row in rows.values():  # items averaged over the two seeds, then over the 20 test items
        accuracy = row["metrics"]["dd-accuracy/accuracy"]
        assert row["status"] == "complete" and accuracy["n"] == 20 and 0 <= accuracy["mean"] <= 1
        assert set(row["seed_spread"]["dd-accuracy/accuracy"]["per_seed"]) == {"0", "1"}
        assert row["cost"]["train_images"] == 12 and "distil_seconds" in row["cost"]  # 2 steps of 6 images
    assert rows["random-real"]["cost"]["teacher_forwards"] == 0 < rows["cv-dd[iterations=2]"]["cost"]["teacher_forwards"]
    assert board["protocols"]["dd-accuracy"]["split"] == "test"
    # each cell keeps its distilled set beside its student: 2 images of each of the 3 classes
    for folder in (out / "cells").iterdir():
        if folder.is_dir():
            with safe_open(str(folder / "distilled-set.safetensors"), framework="pt") as handle:
                assert sorted(handle.get_tensor("labels").tolist()) == [0, 0, 1, 1, 2, 2]
                assert handle.get_tensor("images").dtype == torch.uint8
                assert json.loads(handle.metadata()["class_names"]) == ["circle", "square", "triangle"]
    # the experts were built once, under their content keys; their priors (accuracy in percent on the real
    # training images) stay in the cost of the cells that use them
    assert len(list((out / "experts").glob("expert-shapes-cnn-small-*/classifier.json"))) == 2
    store = Store(out / "results.sqlite")
    try:
        priors = [store.cell(key)["cost"].get("committee_priors") for row in rows.values() for key in row["cells"]]
    finally:
        store.close()
    assert priors.count(None) == 2 and all(len(p) == 2 and all(0 <= v <= 100 for v in p) for p in priors if p)
    capsys.readouterr()
    assert main(["leaderboard", str(out), "--versus", "random-real", "--format", "json"]) == 0
    versus = json.loads(capsys.readouterr().out)["versus"]
    assert {c["row"] for c in versus} == {"random-real-committee", "cv-dd[iterations=2]"}


def test_the_committee_keys_only_the_cells_that_use_it(tmp_path):
    raw = yaml.safe_load(tiny_recipe(tmp_path).read_text())
    keys = {cell.label: cell.key for cell in make_plan(parse_recipe(raw)).cells}
    raw["committee"][1]["steps"] = 3
    changed = {cell.label: cell.key for cell in make_plan(parse_recipe(raw)).cells}
    assert changed["random-real"] == keys["random-real"]
    assert all(changed[row] != keys[row] for row in ("random-real-committee", "cv-dd[iterations=2]"))


@pytest.mark.parametrize("benchmark, message", [
    ("{name: dd-accuracy, dataset: 'pocket:shapes-shape', split: train}",
     "benchmarks[0].split: 'train'; dd-accuracy is scored on the test split"),
    ("{name: dd-accuracy, dataset: 'pocket:shapes-many'}",
     "benchmarks[0].dataset: 'pocket:shapes-many' is not the recipe's source 'pocket:shapes-shape' (data.source)"),
    ("{name: top1, dataset: 'pocket:shapes-shape'}",
     "benchmarks[0]: top1 scores image-classifier students, but this recipe's kind is dataset-distillation"),
])
def test_a_recipe_cannot_score_on_other_data_than_its_source_test_split(tmp_path, capsys, benchmark, message):
    assert main(["run", str(tiny_recipe(tmp_path, benchmark))]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before any expert is trained


@pytest.mark.parametrize("change, message", [
    ({"student": "pocket:shapes-teacher-shape"}, "student: pocket:shapes-teacher-shape: a distilled set trains a "
                                                "fresh network: arch:<architecture>"),
    ({"committee": [{"architecture": "shapes-cnn-small", "ref": "pocket:shapes-teacher-shape"}]},
     "an expert is either ref (a trained classifier) or architecture (trained here)"),
    ({"methods": ["hinton-kd"]}, "methods[0]: hinton-kd trains image-classifier students, but this recipe's kind is "
                                 "dataset-distillation"),
    ({"methods": [{"name": "cv-dd", "images_per_class": 5}]}, "methods[0].images_per_class: unknown field"),
])
def test_bad_dataset_distillation_recipes_name_the_field(tmp_path, change, message):
    raw = {**yaml.safe_load(tiny_recipe(tmp_path).read_text()), **change}
    with pytest.raises(UserInputError) as info:
        parse_recipe(raw, "dd.yaml")
    assert any(message in line for line in info.value.problems), info.value.problems


def test_the_committed_recipe_plans_offline(capsys):
    assert main(["run", str(REPO / "recipes/pocket/dataset-distillation.yaml"), "--check"]) == 0
    printed = capsys.readouterr().out
    assert "kind dataset-distillation, 0 reference row(s), 9 method cell(s)" in printed
    assert "trained-expert:shapes-cnn@" in printed and "ok: the recipe validates and plans" in printed
    recipe = load_recipe(REPO / "recipes/pocket/dataset-distillation.yaml")
    assert recipe.data.images_per_class == 5 and [m.name for m in recipe.methods] == [
        "random-real", "random-real-committee", "cv-dd"]
