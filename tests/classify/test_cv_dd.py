"""CV-DD: committee-voting losses against naive loops (values and gradients), the BN statistics the hooks
record, and a tiny end-to-end distillation scored by dd-accuracy."""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from distillbench.kinds.image_classifier.classifiers import initialised
from distillbench.kinds.dataset_distillation.driver import (BatchNormInputs, Committee, Expert, random_real_subset,
                                                       recover_images, run, train_on)
from distillbench.core.errors import UserInputError
from distillbench.core.recipe import Budget
from distillbench.leaderboards.compare import load_board
from distillbench.methods.classify.cv_dd import (CVDD, bn_statistics_loss, committee_logits, committee_recovery_loss,
                                                 committee_weights)
from distillbench.pocket.shapes_classifiers import pocket_dataset


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
    method = CVDD(images_per_class=2, iterations=15, initialisation="real", jitter=1)
    synthetic = recover_images(method, experts, real, seed=0)
    assert synthetic.images.dtype == torch.uint8 and len(synthetic) == 2 * real.num_classes
    assert synthetic.labels.tolist() == [0, 1, 2, 0, 1, 2]
    start = recover_images(CVDD(images_per_class=2, iterations=1, initialisation="real", jitter=1), experts, real, 0)

    def committee_ce(data):
        images = data.batch(range(len(data)))
        return sum(F.cross_entropy(e.model(images), data.labels).item() for e in experts)

    assert committee_ce(synthetic) < committee_ce(start)
    state = torch.get_rng_state()
    again = recover_images(method, experts, real, seed=0)  # deterministic, crops included, and the global
    assert torch.equal(again.images, synthetic.images)   # RNG is left as it was
    assert torch.equal(torch.get_rng_state(), state)
    plain = recover_images(CVDD(images_per_class=2, iterations=15, initialisation="real", jitter=1, augment=False),
                           experts, real, seed=0)
    assert not torch.equal(plain.images, synthetic.images)  # the crops and flips change what is recovered


def test_a_student_trains_on_the_distilled_set_alone(tiny_world, tmp_path):
    real, experts = tiny_world
    subset = random_real_subset(real, 2, seed=0)
    assert sorted(subset.labels.tolist()) == [0, 0, 1, 1, 2, 2]
    budget = Budget(steps=2, batch_size=6, learning_rate=0.01)
    student = train_on(subset, CVDD(), Committee(experts, 5.0), "shapes-cnn-small", budget, 0, tmp_path / "cell")
    assert student(real.batch(range(4))).shape == (4, 3)


def test_a_recipe_runs_end_to_end_and_writes_a_leaderboard(tmp_path):
    recipe = tmp_path / "dd.yaml"
    recipe.write_text(f"""
name: dd-tiny
source: pocket:shapes-shape
train_size: 48
student: shapes-cnn-small
committee:
  - {{architecture: shapes-cnn-small, steps: 2, seed: 0}}
  - {{architecture: shapes-cnn-small, steps: 2, seed: 1}}
budget: {{steps: 2, batch_size: 6, learning_rate: 0.01}}
seeds: [0, 1]
cv_dd: {{images_per_class: 2, iterations: 2, initialisation: real}}
benchmark: {{dataset: pocket:shapes-shape, n: 20}}
output_dir: {tmp_path / 'out'}
""")
    board = run(recipe)
    rows = board["metrics"]["accuracy"]
    assert set(rows) == {"random-real (CE)", "random-real (committee labels)", "cv-dd"}
    assert all(row["n"] == 20 and 0 <= row["mean"] <= 1 for row in rows.values())  # items, seeds averaged
    assert "versus_random-real (CE)" in rows["cv-dd"]
    assert (tmp_path / "out" / "leaderboard.md").read_text().count("| accuracy |") == 3
    schema, _ = load_board(tmp_path / "out")  # results-schema 1, as compare and the gate read it
    by_row = {row["row"]: row for row in schema["rows"]}
    assert {row["method"] for row in schema["rows"]} == {"ce", "cv-dd"}
    spread = by_row["cv-dd"]["seed_spread"]["dd-accuracy/accuracy"]
    assert spread["per_seed"] == rows["cv-dd"]["seeds"] and set(spread["per_seed"]) == {"0", "1"}
    assert by_row["cv-dd"]["metrics"]["dd-accuracy/accuracy"]["ci95"] == rows["cv-dd"]["ci95"]


@pytest.mark.parametrize("benchmark, message", [
    ("{split: train}", "dd-accuracy is scored on the test split"),
    ("{dataset: 'pocket:shapes-many'}", "is not the recipe's source 'pocket:shapes-shape'"),
])
def test_a_recipe_cannot_score_on_other_data_than_its_source_test_split(tmp_path, benchmark, message):
    recipe = tmp_path / "dd.yaml"
    recipe.write_text(f"""
name: dd-tiny
source: pocket:shapes-shape
student: shapes-cnn-small
committee: [{{architecture: shapes-cnn-small, steps: 2, seed: 0}}]
budget: {{steps: 2, batch_size: 6, learning_rate: 0.01}}
seeds: [0]
cv_dd: {{images_per_class: 2, iterations: 2}}
benchmark: {benchmark}
""")
    with pytest.raises(UserInputError, match=message):
        run(recipe, tmp_path / "out")
    assert not (tmp_path / "out" / "experts").exists()  # refused before any expert is trained
