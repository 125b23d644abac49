"""The linear-probe benchmark: the logistic-regression fit on tricky inputs, and the frozen-encoder protocol."""

import pytest
import torch

from distillbench.benchmarks.linear_probe import LinearProbe, balanced_weights, fit_logistic_regression
from distillbench.kinds.image_classifier.classifiers import initialised


def blobs(counts, dim=4, spread=1.0, seed=0):
    """Gaussian blobs, one per class, `counts[c]` points of class c, centres 2 apart on the first axis."""
    generator = torch.Generator().manual_seed(seed)
    features, labels = [], []
    for label, count in enumerate(counts):
        centre = torch.zeros(dim)
        centre[0] = 2.0 * label
        features.append(centre + spread * torch.randn(count, dim, generator=generator))
        labels.append(torch.full((count,), label))
    return torch.cat(features), torch.cat(labels)


def test_the_fit_is_deterministic_and_separates_separable_classes():
    features, labels = blobs([30, 30, 30], spread=0.1)
    first = fit_logistic_regression(features, labels, 3)
    second = fit_logistic_regression(features, labels, 3)
    assert torch.equal(first.weight, second.weight) and torch.equal(first.bias, second.bias)
    assert (first.logits(features).argmax(1) == labels).all()


def test_the_fit_matches_scikit_learns_logistic_regression():
    sklearn = pytest.importorskip("sklearn.linear_model")
    features, labels = blobs([40, 25, 35], spread=1.5, seed=1)
    l2 = 0.05
    probe = fit_logistic_regression(features, labels, 3, l2=l2, max_iter=1000)
    standardised = ((features.double() - probe.mean) / probe.std).numpy()
    # Σ CE / N + (l2 / 2)‖W‖²  ==  (1 / (C·N)) · (C · Σ CE + ‖W‖² / 2)  with C = 1 / (l2 · N)
    reference = sklearn.LogisticRegression(C=1 / (l2 * len(labels)), tol=1e-10, max_iter=5000)
    reference.fit(standardised, labels.numpy())
    probabilities = probe.logits(features).softmax(1).numpy()
    assert abs(probabilities - reference.predict_proba(standardised)).max() < 1e-4


def test_balanced_weights_rescue_a_rare_overlapping_class():
    features, labels = blobs([380, 20], dim=2, spread=1.2, seed=2)
    plain = fit_logistic_regression(features, labels, 2)
    balanced = fit_logistic_regression(features, labels, 2, class_weight="balanced")
    test_features, test_labels = blobs([500, 500], dim=2, spread=1.2, seed=3)

    def rare_recall(probe):
        predicted = probe.logits(test_features).argmax(1)
        return float((predicted[test_labels == 1] == 1).float().mean())

    assert rare_recall(balanced) > rare_recall(plain) + 0.1
    weights = balanced_weights(labels, 3)  # a class with no example does not count
    assert torch.allclose(weights[labels == 0], torch.tensor(400 / (2 * 380), dtype=torch.float64))
    assert torch.allclose(weights[labels == 1], torch.tensor(400 / (2 * 20), dtype=torch.float64))


def test_the_fit_refuses_features_of_an_encoder_that_is_not_frozen_and_bad_labels():
    features, labels = blobs([5, 5])
    with pytest.raises(ValueError, match="frozen encoder"):
        fit_logistic_regression(features.requires_grad_(), labels, 2)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        fit_logistic_regression(features.detach(), labels + 1, 2)
    with pytest.raises(ValueError, match="expected features"):
        fit_logistic_regression(features.detach()[:3], labels, 2)
    with pytest.raises(ValueError, match="class_weight"):
        fit_logistic_regression(features.detach(), labels, 2, class_weight="auto")


def test_the_benchmark_probes_a_frozen_encoder_and_leaves_it_untouched():
    benchmark = LinearProbe(dataset="pocket:shapes-shape", train_n=40, n=20)
    model = initialised("shapes-cnn-small", 3, seed=0)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    items = benchmark.items()
    outputs = benchmark.predict(model, None, items, batch_size=16)
    assert model.training  # the caller's mode is restored
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics included
    assert outputs == benchmark.predict(model, None, items, batch_size=7)  # batching does not matter
    assert len(outputs) == 20 and all(len(ranked) == 3 for ranked in outputs)
    scores = [benchmark.score(item, output).values["accuracy"] for item, output in zip(items, outputs)]
    assert set(scores) <= {0.0, 1.0}
    assert benchmark.protocol()["train_items"] == 40 and "L-BFGS" in benchmark.protocol()["probe"]
