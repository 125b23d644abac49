"""lelp, distiller-mi, self-distill-gt, distill-nearest, distill-weighted: pure losses against naive loops
(values and gradients), their fitted parts, the kernel-ridge optimal weight, and tiny runs through the harness."""

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from scipy.optimize import minimize_scalar
from torch.nn import functional as F

from distillbench.kinds.image_classifier.classifiers import (SubclassClassifier, initialised, load_directory, save_atomic,
                                              with_subclass_head)
from distillbench.cli.main import main
from distillbench.core.recipe import load_recipe
from distillbench.methods.classify.distill_nearest import (DistillNearest, fit_target_head, knn_task_similarity,
                                                           multi_source_loss)
from distillbench.methods.classify.distill_weighted import DistillWeighted
from distillbench.methods.classify.distiller_mi import cosine_critic, mi_alpha_bound
from distillbench.methods.classify.lelp import fit_subclass_projection, lelp_loss, pseudo_subclass_log_probs
from distillbench.methods.classify.self_distill_gt import (SelfDistillationRounds, optimal_ground_truth_weight,
                                                           ridge_smoother, self_distillation_fit,
                                                           self_distillation_loss)

REPO = Path(__file__).resolve().parents[2]


def recipe(**changes):
    """A tiny 3-class pocket recipe (the shapes task, its teacher, a fresh small student)."""
    raw = {"name": "seed-a", "kind": "image-classifier", "teacher": "pocket:shapes-teacher-shape", "student": "arch:shapes-cnn-small",
           "data": {"source": "pocket:shapes-shape", "size": 48, "augment": "flip"},
           "budget": {"steps": 2, "batch_size": 8, "learning_rate": 0.01, "optimizer": "sgd"},
           "methods": ["ce"], "benchmarks": [{"name": "top1", "dataset": "pocket:shapes-shape", "n": 16}]}
    return {**raw, **changes}


def grads(value, *tensors):
    return torch.autograd.grad(value, tensors)


# --- LELP -------------------------------------------------------------------------------------------------
def _projection(classes=3, per_class=2, dim=12, count=60, seed=0):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(count, dim, generator=generator)
    labels = torch.arange(count) % classes
    weight = torch.randn(classes, dim, generator=generator)
    return features, labels, weight, fit_subclass_projection(features, labels, weight, per_class,
                                                             torch.Generator().manual_seed(seed))


def test_lelp_directions_lie_in_the_classifier_null_space_and_are_orthonormal():
    features, labels, weight, projection = _projection()
    assert projection.directions.shape == (3, 2, 12)
    assert torch.allclose(torch.einsum("kd,csd->kcs", weight, projection.directions), torch.zeros(3, 3, 2), atol=1e-4)
    for directions in projection.directions:
        assert torch.allclose(directions @ directions.T, torch.eye(2), atol=1e-5)
    # σ_c is the RMS of the class's centred coordinates: the spread has unit mean square per class
    spread = (torch.einsum("bd,csd->bcs", features, projection.directions) - projection.offsets) \
        / projection.scales[:, None]
    for label in range(3):
        assert spread[labels == label, label].pow(2).mean().item() == pytest.approx(1.0, rel=1e-4)
    again = _projection()[3]
    assert torch.equal(again.directions, projection.directions)  # a function of the generator's seed
    with pytest.raises(ValueError, match="needs more than 30"):
        fit_subclass_projection(features, labels, weight, 30, torch.Generator())


@pytest.mark.parametrize("class_temperature, subclass_temperature", [(1.0, 1.0), (2.0, 0.5)])
def test_pseudo_subclass_log_probs_match_a_loop_and_keep_the_class_probabilities(class_temperature,
                                                                                  subclass_temperature):
    features, _, _, projection = _projection()
    teacher_logits = torch.randn(5, 3)
    got = pseudo_subclass_log_probs(teacher_logits, features[:5], projection, class_temperature,
                                    subclass_temperature)
    for i in range(5):
        class_probs = torch.softmax(teacher_logits[i] / class_temperature, 0)
        for c in range(3):
            spreads = [(features[i] @ projection.directions[c, s] - projection.offsets[c, s]) / projection.scales[c]
                       for s in range(2)]
            normaliser = sum(math.exp(spread / subclass_temperature) for spread in spreads)
            for s in range(2):
                expected = class_probs[c] * math.exp(spreads[s] / subclass_temperature) / normaliser
                assert got[i, c * 2 + s].exp().item() == pytest.approx(expected.item(), abs=1e-6)
    # the S subclasses of a class share out exactly the teacher's probability of that class
    summed = got.exp().unflatten(1, (3, 2)).sum(2)
    assert torch.allclose(summed, torch.softmax(teacher_logits / class_temperature, 1), atol=1e-6)


@pytest.mark.parametrize("ce_weight, temperature", [(0.0, 1.0), (0.3, 2.0)])
def test_lelp_loss_matches_a_loop_in_value_and_gradient(ce_weight, temperature):
    torch.manual_seed(0)
    student = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    target = torch.randn(4, 6, dtype=torch.float64).log_softmax(1)
    labels = torch.tensor([0, 2, 1, 2])
    terms = lelp_loss(student, target, labels, per_class=2, temperature=temperature, ce_weight=ce_weight)
    assert ("ce" in terms) == bool(ce_weight)
    naive = 0
    for i in range(4):
        p = target[i].exp()
        log_q = torch.log_softmax(student[i] / temperature, 0)
        naive = naive + (1 - ce_weight) * temperature**2 * sum(p[k] * (p[k].log() - log_q[k]) for k in range(6)) / 4
        class_logits = torch.stack([torch.logsumexp(student[i, 2 * c:2 * c + 2], 0) for c in range(3)])
        naive = naive + ce_weight * -torch.log_softmax(class_logits, 0)[labels[i]] / 4
    total = sum(terms.values())
    assert torch.allclose(total, naive)
    assert torch.allclose(grads(total, student)[0], grads(naive, student)[0])


def test_a_subclass_classifier_predicts_summed_subclass_probabilities_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = with_subclass_head(initialised("shapes-cnn-small", 3, seed=0), per_class=4).eval()
    images = torch.randn(2, 3, 32, 32)
    subclass, _ = model.subclass_logits(images)
    assert subclass.shape == (2, 12)
    summed = subclass.softmax(1).unflatten(1, (3, 4)).sum(2)
    assert torch.allclose(model(images).softmax(1), summed, atol=1e-6)
    save_atomic(model, tmp_path / "m")
    loaded = load_directory(tmp_path / "m").eval()
    assert isinstance(loaded, SubclassClassifier) and loaded.num_classes == 3
    assert torch.allclose(loaded(images), model(images))


# --- Distiller's MI-α -------------------------------------------------------------------------------------
def naive_mi_alpha(scores, alpha, log_baseline):
    """Poole et al.'s interpolated bound written out term by term, as the authors' code computes it."""
    count = len(scores)

    def denominator(i, j):  # α · mean over k ≠ j of e^{s_ik} + (1 − α) · q(t_i)
        mean = sum(torch.exp(scores[i, k]) for k in range(count) if k != j) / (count - 1)
        return alpha * mean + (1 - alpha) * torch.exp(log_baseline[i])

    pairs = [(i, j) for i in range(count) for j in range(count) if i != j]
    joint = sum(scores[i, i] - torch.log(denominator(i, j)) for i, j in pairs) / len(pairs)
    marginal = sum(torch.exp(scores[i, j]) / denominator(i, i) for i, j in pairs) / len(pairs)
    return 1 + joint - marginal


@pytest.mark.parametrize("alpha", [0.0, 0.4, 1.0])
def test_mi_alpha_bound_matches_a_loop_in_value_and_gradient(alpha):
    torch.manual_seed(1)
    scores = torch.randn(5, 5, dtype=torch.float64, requires_grad=True)
    log_baseline = torch.randn(5, dtype=torch.float64, requires_grad=True)
    got, naive = mi_alpha_bound(scores, alpha, log_baseline), naive_mi_alpha(scores, alpha, log_baseline)
    assert torch.allclose(got, naive)
    inputs = (scores, log_baseline) if alpha < 1 else (scores,)  # at α = 1 the baseline's weight is 0
    for ours, theirs in zip(grads(got, *inputs), grads(naive, *inputs)):
        assert torch.allclose(ours, theirs)


def test_mi_alpha_ends_are_nwj_and_the_infonce_ceiling():
    torch.manual_seed(4)
    scores = torch.randn(6, 6, dtype=torch.float64)
    off_diagonal = ~torch.eye(6, dtype=torch.bool)
    # α = 0 is TUBA; with log q = 1 it is NWJ: E_p[f] − E_q[e^{f − 1}] (Poole et al. 2019, eq. 8)
    nwj = scores.diagonal().mean() - (scores - 1).exp()[off_diagonal].mean()
    assert torch.allclose(mi_alpha_bound(scores, 0.0, torch.ones(6, dtype=torch.float64)), nwj)
    # α = 1: every s_ii − log m_ij is at most log(K − 1), and the marginal term is exactly 1 (row i's
    # negatives over their own mean), so I_1 ≤ log(K − 1), reached when the critic separates the pairs
    torch.manual_seed(2)
    teacher = torch.randn(16, 8)
    student = teacher + 0.1 * torch.randn(16, 8)
    sharp = mi_alpha_bound(cosine_critic(teacher, student, 0.01), 1.0, torch.zeros(16))
    assert sharp <= math.log(15) + 1e-5 and sharp == pytest.approx(math.log(15), abs=1e-3)


def test_mi_alpha_is_larger_for_paired_representations_than_for_shuffled_ones():
    torch.manual_seed(2)
    teacher = torch.randn(16, 8)
    student = teacher + 0.1 * torch.randn(16, 8)
    for alpha in (0.0, 0.5, 1.0):
        paired = mi_alpha_bound(cosine_critic(teacher, student, 0.1), alpha, torch.zeros(16))
        shuffled = mi_alpha_bound(cosine_critic(teacher, student[torch.randperm(16)], 0.1), alpha, torch.zeros(16))
        assert paired > shuffled


# --- self-distillation with ground-truth guidance ---------------------------------------------------------
def test_self_distillation_loss_matches_a_loop_and_fits_the_mixed_targets():
    torch.manual_seed(3)
    logits = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    previous = torch.randn(4, 3, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 1])
    alpha = 0.6
    got = self_distillation_loss(logits, labels, previous, alpha)
    probs, teacher = logits.softmax(1), previous.softmax(1)
    naive = 0
    for i in range(4):
        for c in range(3):
            onehot = float(labels[i] == c)
            squared = alpha * (probs[i, c] - onehot) ** 2 + (1 - alpha) * (probs[i, c] - teacher[i, c]) ** 2
            naive = naive + squared / 12
    assert torch.allclose(got, naive)
    # the same gradient as the squared error to the paper's targets α·y + (1 − α)·p_prev
    mixed = alpha * F.one_hot(labels, 3).double() + (1 - alpha) * teacher
    assert torch.allclose(grads(got, logits)[0], grads(F.mse_loss(probs, mixed), logits)[0])
    round_zero = self_distillation_loss(logits, labels, None, alpha)
    assert torch.allclose(round_zero, F.mse_loss(probs, F.one_hot(labels, 3).double()))


def rbf(left, right, gamma=80.0):
    return torch.exp(-gamma * (left[:, None] - right[None, :]) ** 2)


def toy_problem():
    """The authors' toy example: 11 noisy samples of sin(2πx), RBF γ = 80, λ = 0.2 (their notebook's values)."""
    points = torch.arange(11, dtype=torch.float64) / 10
    labels = torch.tensor([0.38476636465198066, 1.2333967683416893, 1.33232242218057, 0.6920159488889518,
                           -0.29756145531871736, -0.24189291901377769, -0.7964485769175675, -0.9616480167034174,
                           -0.49672509509916934, -0.3469066003991437, 0.5589512650600734], dtype=torch.float64)
    return points, labels, rbf(points, points), 0.2


@pytest.mark.parametrize("rounds", [1, 3])
def test_the_optimal_ground_truth_weight_is_the_numeric_minimum(rounds):
    points, labels, kernel, ridge = toy_problem()
    grid = torch.linspace(0, 1, 101, dtype=torch.float64)
    train_smoother = ridge_smoother(kernel, ridge)
    grid_smoother = ridge_smoother(kernel, ridge, rbf(grid, points))
    previous = train_smoother @ labels  # round 0 fits the labels
    for _ in range(rounds - 1):
        previous = self_distillation_fit(train_smoother, labels, previous, 0.35)
    truth = torch.sin(2 * math.pi * grid)

    def risk(alpha):  # fit the round with this α, measure it against the noise-free function
        return float((truth - self_distillation_fit(grid_smoother, labels, previous, alpha)).pow(2).mean())

    closed = optimal_ground_truth_weight(grid_smoother @ labels, grid_smoother @ previous, truth)
    numeric = minimize_scalar(risk, bounds=(-5, 5), method="bounded", options={"xatol": 1e-10}).x
    assert closed == pytest.approx(numeric, abs=1e-6)
    assert risk(closed) <= min(risk(0.0), risk(0.35), risk(1.0))
    # against the labels on the training points it is ⟨y − A f, A(y − f)⟩ / ‖A(y − f)‖²
    residual = train_smoother @ (labels - previous)
    expected = torch.dot(labels - train_smoother @ previous, residual) / residual.pow(2).sum()
    on_labels = optimal_ground_truth_weight(train_smoother @ labels, train_smoother @ previous, labels)
    assert on_labels == pytest.approx(float(expected))
    assert on_labels >= 1  # training error never asks for the teacher: every eigen-direction pulls α* to ≥ 1


def test_infinitely_many_rounds_solve_the_original_problem_with_the_ridge_amplified():
    _, labels, kernel, ridge = toy_problem()
    alpha = 0.35
    smoother = ridge_smoother(kernel, ridge)
    fit = smoother @ labels
    for _ in range(3000):
        fit = self_distillation_fit(smoother, labels, fit, alpha)
    assert torch.allclose(fit, ridge_smoother(kernel, ridge / alpha) @ labels, atol=1e-8)


def test_a_new_round_makes_the_student_the_teacher_and_restarts_it():
    student = initialised("shapes-cnn-small", 3, seed=0)
    rounds = SelfDistillationRounds(student)
    with torch.no_grad():
        student.head.weight.add_(1.0)
    trained = {k: v.clone() for k, v in student.state_dict().items()}
    rounds.start_round(1)
    assert int(rounds.round) == 1
    assert all(torch.equal(v, trained[k]) for k, v in rounds.previous.state_dict().items())
    assert all(torch.equal(v, rounds.initial.state_dict()[k]) for k, v in student.state_dict().items())
    rounds.train()
    assert student.training and not rounds.previous.training
    assert not any(p.requires_grad for p in rounds.previous.parameters())
    continuing = SelfDistillationRounds(student, restart=False)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    continuing.start_round(2)
    assert continuing.initial is None and all(torch.equal(v, before[k]) for k, v in student.state_dict().items())


# --- DistillNearest / DistillWeighted ---------------------------------------------------------------------
def test_knn_task_similarity_matches_a_loop_and_ranks_informative_features_first():
    generator = torch.Generator().manual_seed(4)
    labels = torch.arange(40) % 2
    informative = torch.randn(40, 6, generator=generator) + 3 * F.one_hot(labels, 6).float()
    noise = torch.randn(40, 6, generator=generator)
    for features in (informative, noise):
        normalised = F.normalize(features.double(), dim=1)
        correct = 0
        for i in range(40):
            distances = [(float(normalised[i] @ normalised[j]), j) for j in range(40) if j != i]
            nearest = [j for _, j in sorted(distances, reverse=True)[:5]]
            votes = torch.bincount(labels[nearest], minlength=2)
            correct += int(votes.argmax() == labels[i])
        assert knn_task_similarity(features, labels, 5) == pytest.approx(correct / 40)
    assert knn_task_similarity(informative, labels, 5) > knn_task_similarity(noise, labels, 5) + 0.3


def test_a_fitted_target_head_classifies_the_target_labels():
    generator = torch.Generator().manual_seed(5)
    labels = torch.arange(60) % 3
    features = torch.randn(60, 5, generator=generator) + 4 * F.one_hot(labels, 5).float()
    head = fit_target_head(features, labels, 3)
    assert (head(features).argmax(1) == labels).float().mean() > 0.95
    assert not any(p.requires_grad for p in head.parameters())


def test_multi_source_loss_matches_a_loop_in_value_and_gradient():
    torch.manual_seed(6)
    student = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    projected = [torch.randn(3, 5, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    sources = [torch.randn(3, 5, dtype=torch.float64) for _ in range(2)]
    source_logits = [torch.randn(3, 4, dtype=torch.float64) for _ in range(2)]
    labels = torch.tensor([0, 3, 1])
    weights = torch.tensor([0.7, 0.3], dtype=torch.float64)
    tau = 2.0
    terms = multi_source_loss(student, labels, source_logits, projected, sources, weights, tau, 1.0, 0.5, 0.25)
    naive = 0
    for i in range(3):
        target = sum(weights[s] * torch.softmax(source_logits[s][i] / tau, 0) for s in range(2))
        log_q = torch.log_softmax(student[i] / tau, 0)
        naive = naive + 0.5 * tau**2 * sum(target[k] * (target[k].log() - log_q[k]) for k in range(4)) / 3
        naive = naive - torch.log_softmax(student[i], 0)[labels[i]] / 3
        for s in range(2):
            naive = naive + 0.25 * weights[s] * sum((projected[s][i, d] - sources[s][i, d]) ** 2 for d in range(5)) / 15
    total = sum(terms.values())
    assert torch.allclose(total, naive)
    for got, expected in zip(grads(total, student, *projected), grads(naive, student, *projected)):
        assert torch.allclose(got, expected)
    # a source of weight 0 takes no part (DistillNearest's unselected sources)
    one_hot = torch.tensor([1.0, 0.0], dtype=torch.float64)
    alone = multi_source_loss(student, labels, source_logits, projected, sources, one_hot, tau, 1.0, 0.5, 0.25)
    assert torch.autograd.grad(sum(alone.values()), projected[1], allow_unused=True)[0] is None
    assert torch.allclose(alone["features"], 0.25 * (projected[0] - sources[0]).pow(2).mean())


def test_nearest_puts_all_weight_on_the_most_similar_source_and_weighted_a_softmax():
    similarities = torch.tensor([0.5, 0.9, 0.7])
    assert torch.equal(DistillNearest().source_weights(similarities), torch.tensor([0.0, 1.0, 0.0]))
    weighted = DistillWeighted(weight_temperature=0.1).source_weights(similarities)
    assert torch.allclose(weighted, torch.softmax(similarities / 0.1, 0))
    assert weighted.argmax() == 1 and weighted.sum() == pytest.approx(1.0)


# --- runs ---------------------------------------------------------------------------------------------------
def test_the_five_methods_run_through_the_harness_and_save_plain_students(tmp_path):
    path = tmp_path / "r.yaml"
    sources = ["pocket:shapes-teacher-many", "pocket:shapes-teacher-binary"]
    methods = [{"name": "lelp", "subclasses": 2}, "distiller-mi", {"name": "self-distill-gt", "distillation_steps": 2},
               {"name": "distill-nearest", "sources": sources, "similarity_examples": 32},
               {"name": "distill-weighted", "sources": sources}]
    raw = recipe(output_dir=str(tmp_path / "out"), methods=methods)
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path)]) == 0
    board = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    rows = {row["row"]: row for row in board["rows"]}
    assert len(rows) == 6 and all(row["metrics"]["top1/accuracy"]["n"] == 16 for row in rows.values())
    cells = tmp_path / "out" / "cells"
    lelp = json.loads((next(cells.glob("lelp*")) / "model" / "classifier.json").read_text())
    assert lelp["combine"] == {"kind": "subclasses", "per_class": 2} and lelp["num_classes"] == 3
    for name in ("distiller-mi", "self-distill-gt", "distill-nearest", "distill-weighted"):
        saved = json.loads((next(cells.glob(f"{name}*")) / "model" / "classifier.json").read_text())
        assert "combine" not in saved and saved["architecture"] == "shapes-cnn-small"
    nearest = next(row for label, row in rows.items() if label.startswith("distill-nearest"))
    assert nearest["cost"]["teacher_forwards"] == 2 * 2 * 8  # two sources on every image of two steps


def test_source_teachers_enter_the_cell_key_and_are_checked():
    from distillbench.core.errors import UserInputError
    from distillbench.core.plan import make_plan
    from distillbench.core.recipe import parse_recipe

    def key(sources):
        raw = recipe(methods=[{"name": "distill-nearest", "sources": sources}])
        return make_plan(parse_recipe(raw)).cells[-1].key

    assert key(["pocket:shapes-teacher-many"]) != key(["pocket:shapes-teacher-binary"])
    with pytest.raises(UserInputError) as info:
        parse_recipe(recipe(methods=[{"name": "distill-nearest", "sources": ["pocket:teacher-sft"]}]), "r.yaml")
    assert "sources: pocket:teacher-sft is not an image classifier" in info.value.problems[0]


def test_the_seed_paper_recipe_is_valid():
    parsed = load_recipe(REPO / "recipes/pocket/classify-seed-a.yaml")
    names = {m.name for m in parsed.methods}
    assert names >= {"ce", "hinton-kd", "lelp", "distiller-mi", "self-distill-gt", "distill-nearest",
                     "distill-weighted"}
    assert len(parsed.seeds) >= 3
    binary = load_recipe(REPO / "recipes/pocket/classify-seed-a-binary.yaml")
    assert binary.data.source == "pocket:shapes-binary" and {m.name for m in binary.methods} >= {"lelp", "hinton-kd"}


def test_cosine_critic_and_the_parameter_norm_penalty_match_loops_in_value_and_gradient():
    from distillbench.methods.classify.distiller_mi import cosine_critic
    from distillbench.methods.classify.self_distill_gt import parameter_norm_penalty
    from tests.conftest import assert_same_value_and_gradients, leaf_copies

    generator = torch.Generator().manual_seed(4)
    teacher, student = (torch.randn(3, 5, generator=generator, dtype=torch.float64) for _ in range(2))
    fast_inputs, slow_inputs = leaf_copies(teacher, student), leaf_copies(teacher, student)
    t, s = slow_inputs
    naive = torch.stack([torch.stack([(t[i] @ s[j]) / (t[i].pow(2).sum().sqrt() * s[j].pow(2).sum().sqrt()) / 0.2
                                      for j in range(3)]) for i in range(3)])
    fast = cosine_critic(*fast_inputs, temperature=0.2)
    weights = torch.randn(3, 3, generator=generator, dtype=torch.float64)
    assert_same_value_and_gradients((fast * weights).sum(), (naive * weights).sum(), fast_inputs, slow_inputs)

    tensors = [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in ((4, 3), (3,), (2, 2, 2))]
    fast_inputs, slow_inputs = leaf_copies(*tensors), leaf_copies(*tensors)
    naive = sum(sum(value ** 2 for value in tensor.flatten()).sqrt() for tensor in slow_inputs)  # norms, not squared
    assert_same_value_and_gradients(parameter_norm_penalty(fast_inputs), naive, fast_inputs, slow_inputs)
