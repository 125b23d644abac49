"""Semi-supervised classifier distillation: hidden labels, paired labeled/unlabeled batches, DHO."""

import json

import pytest
import torch
import yaml
from torch.nn import functional as F

from distillbench.kinds.image_classifier.classifiers import initialised, load_classifier, save_atomic
from distillbench.cli.main import main
from distillbench.core.errors import UserInputError
from distillbench.kinds.image_classifier.images import ImageBatching, hide_labels
from distillbench.core.recipe import parse_recipe
from distillbench.methods.classify.dho import DHO
from distillbench.pocket.shapes_classifiers import pocket_dataset


def test_hidden_labels_keep_the_first_k_of_each_class():
    data = hide_labels(pocket_dataset("pocket:shapes-shape", "train", 60), 4)
    kept = data.labels[data.labels >= 0].tolist()
    assert sorted(kept) == [0] * 4 + [1] * 4 + [2] * 4
    original = pocket_dataset("pocket:shapes-shape", "train", 60).labels
    assert torch.equal(data.labels[data.labels >= 0], original[data.labels >= 0])


def test_semi_supervised_steps_pair_a_labeled_and_an_unlabeled_batch():
    data = hide_labels(pocket_dataset("pocket:shapes-shape", "train", 60), 4)
    batching = ImageBatching(data, "none", 8)
    lengths = batching.lengths(data)
    indices = batching.step_indices(lengths, 8, 0, 3)
    assert len(indices) == 16 and indices == batching.step_indices(lengths, 8, 0, 3)
    assert all(data.labels[i] >= 0 for i in indices[:8]) and all(data.labels[i] < 0 for i in indices[8:])
    assert batching.steps_per_epoch == (60 - 12) // 8


def test_gradient_accumulation_gives_every_micro_batch_its_share_of_labeled_and_unlabeled_images():
    # DHO averages its labeled and unlabeled rows separately: micro-batches of only one kind (the step cut
    # in consecutive halves) accumulated to half the step's loss
    from distillbench.core.recipe import Budget
    from distillbench.core.train import _micro_batch_weights

    data = hide_labels(pocket_dataset("pocket:shapes-shape", "train", 60), 4)
    batching = ImageBatching(data, "none", 8)
    indices = batching.step_indices(batching.lengths(data), 8, 0, 3)
    assert batching.split_step(indices, Budget(steps=1, batch_size=8, learning_rate=0.1)) == [indices]
    parts = batching.split_step(indices, Budget(steps=1, batch_size=8, learning_rate=0.1, gradient_accumulation=2))
    assert [sorted(p) for p in parts] == [sorted(indices[:4] + indices[8:12]), sorted(indices[4:8] + indices[12:])]
    torch.manual_seed(0)
    method = DHO()
    module = method.training_module(initialised("shapes-cnn-small", 3, seed=0)).eval()
    teacher = torch.randn(len(data), 3) * 3

    def loss(batch_indices):
        batch = {"images": data.batch(batch_indices), "labels": data.labels[batch_indices],
                 "teacher_logits": teacher[batch_indices], "epoch": 1}
        return batch, sum(method.loss(module, batch).values())

    whole = loss(indices)[1]
    batches, losses = zip(*(loss(p) for p in parts))
    weights = _micro_batch_weights(list(batches), "examples", batching)
    assert torch.allclose(sum(w * l for w, l in zip(weights, losses)), whole, atol=1e-5)


def naive_dho(ce, kd, teacher, labels, temperature=2.0):
    """train_others.py's loss on a labeled batch and an unlabeled batch."""
    labeled = labels >= 0
    ce_loss = F.cross_entropy(ce[labeled], labels[labeled])
    kl = lambda s, t: F.kl_div(F.log_softmax(s / temperature, 1), F.softmax(t / temperature, 1),
                               reduction="batchmean") * temperature * temperature
    return 0.5 * ce_loss + 0.5 * (kl(kd[labeled], teacher[labeled]) + kl(kd[~labeled], teacher[~labeled]))


def test_dho_loss_is_the_authors_and_trains_both_heads():
    torch.manual_seed(0)
    student = initialised("shapes-cnn-small", 3, seed=0)
    method = DHO()
    module = method.training_module(student)
    images, teacher = torch.randn(8, 3, 32, 32), torch.randn(8, 3) * 3
    labels = torch.tensor([0, 1, 2, 0, -1, -1, -1, -1])
    terms = method.loss(module, {"images": images, "labels": labels, "teacher_logits": teacher, "epoch": 1})
    assert set(terms) == {"ce", "kd_labeled", "kd_unlabeled"}
    ce, kd, _ = module.both(images)
    naive = naive_dho(ce, kd, teacher, labels)
    assert torch.allclose(sum(terms.values()), naive, atol=1e-5)
    heads = [module.second_head.weight, student.network.fc.weight]
    for got, want in zip(torch.autograd.grad(sum(terms.values()), heads), torch.autograd.grad(naive, heads)):
        assert got.abs().sum() > 0 and torch.allclose(got, want, atol=1e-6)


def test_the_two_headed_student_predicts_with_the_mixture_and_round_trips(tmp_path):
    module = DHO(alpha=0.3, beta=0.75).training_module(initialised("shapes-cnn-small", 30, seed=1)).eval()
    images = torch.randn(4, 3, 32, 32)
    ce, kd, _ = module.both(images)
    mixture = 0.3 * ce.softmax(1) + 0.7 * (kd / 0.75).softmax(1)
    assert torch.allclose(module(images).exp(), mixture, atol=1e-6)
    save_atomic(module, tmp_path / "dho")
    loaded = load_classifier(str(tmp_path / "dho")).eval()
    assert torch.allclose(loaded(images), module(images), atol=1e-6) and loaded.alpha == 0.3


def _recipe(**changes):
    raw = {"name": "semi", "kind": "image-classifier", "teacher": "pocket:shapes-teacher-shape", "student": "arch:shapes-cnn-small",
           "data": {"source": "pocket:shapes-shape", "size": 48, "labeled_per_class": 2},
           "budget": {"steps": 2, "batch_size": 4, "learning_rate": 0.01, "optimizer": "sgd"},
           "methods": ["ce", {"name": "hinton-kd", "ce_weight": 0.5, "kd_weight": 0.5, "temperature": 2.0}, "dho"],
           "benchmarks": [{"name": "top1", "dataset": "pocket:shapes-shape", "n": 12}]}
    raw.update(changes)
    return raw


def test_methods_that_need_every_label_refuse_semi_supervised_data():
    with pytest.raises(UserInputError) as info:
        parse_recipe(_recipe(methods=["dkd", "pld", "dho"]), "r.yaml")
    assert info.value.problems == [
        "r.yaml: methods[0]: dkd needs every example's label; it cannot train on semi-supervised data "
        "(data.labeled_per_class)",
        "r.yaml: methods[1]: pld needs every example's label; it cannot train on semi-supervised data "
        "(data.labeled_per_class)"]


@pytest.mark.parametrize("accumulation", [1, 2])
def test_a_semi_supervised_run(tmp_path, accumulation):
    # with accumulation each micro-batch holds half the labeled and half the unlabeled images (split_step)
    raw = _recipe(output_dir=str(tmp_path / "out"))
    raw["budget"] = {**raw["budget"], "gradient_accumulation": accumulation}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path)]) == 0
    board = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    rows = {row["row"]: row for row in board["rows"]}
    assert rows["dho"]["cost"]["train_images"] == 16  # 2 steps × (4 labeled + 4 unlabeled)
    spec = json.loads((next((tmp_path / "out" / "cells").glob("dho-*")) / "model" / "classifier.json").read_text())
    assert spec["combine"] == {"kind": "dual-head", "alpha": 0.5, "beta": 0.5}
