"""fair-latent: its losses against naive references, the pocket-fair world, the fairness/fidelity metrics on
tricky inputs, a tiny fit → save → load → score, and the tabular kind's recipe run end to end."""

import math

import numpy as np
import pytest
import torch
import yaml

from distillbench.benchmarks.fairness import (FairSynthetic, demographic_parity_difference, fidelity_distances,
                                              records_to_rows, rows_to_records, total_variation, wasserstein_1d)
from distillbench.cli.main import main
from distillbench.kinds.tabular.generators import FittedGenerator, load_generator, save_generator
from distillbench.leaderboards.compare import load_board
from distillbench.methods.classify.fair_latent import (FairLatent, distance_covariance_squared,
                                                       fair_distillation_loss, gaussian_kl)
from distillbench.pocket.fair_tabular import generate


def naive_dcov_squared(x, y):
    """Székely's V-statistic as S1 + S2 − 2·S3 of plain distance loops."""
    n = len(x)
    a = [[torch.sqrt(((x[i] - x[j]) ** 2).sum()) if i != j else x.new_zeros(()) for j in range(n)] for i in range(n)]
    b = [[float(np.linalg.norm(y[i] - y[j])) for j in range(n)] for i in range(n)]
    s1 = sum(a[i][j] * b[i][j] for i in range(n) for j in range(n)) / n**2
    s2 = sum(a[i][j] for i in range(n) for j in range(n)) / n**2 * sum(b[i][j] for i in range(n) for j in range(n)) / n**2
    s3 = sum(a[i][j] * b[i][k] for i in range(n) for j in range(n) for k in range(n)) / n**3
    return s1 + s2 - 2 * s3


def test_distance_covariance_matches_the_three_term_formula_in_value_and_gradient():
    torch.manual_seed(0)
    x = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[0.0], [1.0], [1.0], [0.0], [1.0], [0.0], [0.0]], dtype=torch.float64)
    fast, slow = distance_covariance_squared(x.double(), y), naive_dcov_squared(x, y.numpy())
    torch.testing.assert_close(fast.double(), slow)
    (grad_fast,), (grad_slow,) = torch.autograd.grad(fast, x), torch.autograd.grad(slow, x)
    assert torch.isfinite(grad_fast).all()  # no NaN from the zero diagonal distances
    torch.testing.assert_close(grad_fast.double(), grad_slow)
    # Independence (a constant attribute) gives 0; a code that copies the attribute gives > 0.
    assert float(distance_covariance_squared(x.detach(), torch.ones(7, 1))) == pytest.approx(0, abs=1e-12)
    assert float(distance_covariance_squared(y.repeat(1, 3), y)) > 0.1


def test_fair_distillation_loss_matches_a_naive_loop_in_value_and_gradient():
    torch.manual_seed(1)
    student_mean = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    student_logvar = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    teacher_mean, teacher_logvar = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    quality, utility = fair_distillation_loss(student_mean, student_logvar, teacher_mean, teacher_logvar, 0.5, 2.0)
    squared, kls = [], []
    for i in range(4):
        kl = 0.0
        for d in range(3):
            squared.append((student_mean[i, d] - teacher_mean[i, d]) ** 2)
            var_t, var_s = teacher_logvar[i, d].exp(), student_logvar[i, d].exp()
            kl = kl + 0.5 * (torch.log(var_s / var_t) + (var_t + (teacher_mean[i, d] - student_mean[i, d]) ** 2) / var_s - 1)
        kls.append(kl)
    naive = (0.5 * sum(squared) / len(squared), 2.0 * sum(kls) / len(kls))
    for a, b in zip((quality, utility), naive):
        torch.testing.assert_close(a.double(), b)
        for grad_a, grad_b in zip(torch.autograd.grad(a, [student_mean, student_logvar], retain_graph=True,
                                                      allow_unused=True),
                                  torch.autograd.grad(b, [student_mean, student_logvar], retain_graph=True,
                                                      allow_unused=True)):
            if grad_a is None:
                assert grad_b is None or not grad_b.any()
            else:
                torch.testing.assert_close(grad_a.double(), grad_b)
    assert float(gaussian_kl(teacher_mean, teacher_logvar, teacher_mean, teacher_logvar).abs().max()) < 1e-12


def test_the_pocket_fair_world_is_deterministic_and_biased_as_specified():
    first, again, test = generate("train", 3000), generate("train", 3000), generate("test", 3000)
    assert torch.equal(first.numeric, again.numeric) and torch.equal(first.label, again.label)
    assert not torch.equal(first.numeric, test.numeric)
    rates = [float(first.label[first.group == g].float().mean()) for g in (0, 1)]
    assert rates[0] - rates[1] > 0.15  # the mechanism approves the protected group less
    assert abs(float(first.group.float().mean()) - 0.4) < 0.03
    assert first.rows().shape == (3000, 14) and first.features().shape == (3000, 10)
    with pytest.raises(ValueError, match="split 'dev'"):
        generate("dev")


def test_demographic_parity_on_tricky_inputs():
    assert demographic_parity_difference([1, 1, 1, 1], [0, 1, 0, 1]) == 0.0  # all the same: no gap
    assert demographic_parity_difference([0, 0, 0, 0], [0, 1, 1, 1]) == 0.0
    assert demographic_parity_difference([1, 0, 0, 0], [0, 0, 1, 1]) == pytest.approx(0.5)
    assert demographic_parity_difference([1, 1, 0, 0], [0, 0, 1, 1]) == 1.0
    with pytest.raises(ValueError, match="group 1 has no rows"):
        demographic_parity_difference([1, 0, 1], [0, 0, 0])
    with pytest.raises(ValueError, match="group 0 has no rows"):
        demographic_parity_difference([1], [1])
    with pytest.raises(ValueError, match="predictions must be 0 or 1"):
        demographic_parity_difference([0.7, 0], [0, 1])
    with pytest.raises(ValueError, match="groups must be 0 or 1"):
        demographic_parity_difference([1, 0], [0, 2])
    with pytest.raises(ValueError, match="2 predictions for 3"):
        demographic_parity_difference([1, 0], [0, 1, 1])


def test_fidelity_distances_on_known_cases():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(1.0, 2.0, size=70)
    assert wasserstein_1d(a, b) == pytest.approx(scipy_stats.wasserstein_distance(a, b))
    assert wasserstein_1d(a, a + 3.0) == pytest.approx(3.0)
    assert total_variation([0, 0, 1, 1], [0, 1, 1, 1], 3) == pytest.approx(0.25)
    assert total_variation([2, 2], [0, 0], 3) == 1.0
    real = generate("test", 500)
    same = fidelity_distances(real, real)
    assert same["mean"] == 0.0 and set(same) >= {"skill", "region", "group", "approved"}
    shuffled = records_to_rows(rows_to_records(real))
    assert torch.equal(shuffled.categorical, real.categorical) and torch.allclose(shuffled.numeric, real.numeric)
    flipped = records_to_rows([{**row, "approved": 1 - row["approved"]} for row in rows_to_records(real)])
    assert fidelity_distances(flipped, real)["approved"] > 0


def test_a_tiny_fit_saves_loads_and_scores(tmp_path):
    data = generate("train", 300)
    method = FairLatent(teacher_steps=30, student_steps=20, batch_size=64)
    assert "fairness" in method.teacher_loss(*_tiny_vae(), data, torch.zeros(300, 8))
    assert "fairness" not in FairLatent(fairness_weight=0).teacher_loss(*_tiny_vae(), data, torch.zeros(300, 8))
    generator = method.fit(data, seed=0)
    assert torch.equal(generator.sample(20, seed=1).numeric, method.fit(data, seed=0).sample(20, seed=1).numeric)
    save_generator(FittedGenerator(method, generator), tmp_path / "model")
    loaded = load_generator(tmp_path / "model")
    assert loaded.method == method
    assert torch.equal(loaded.sample(50, seed=2).numeric, generator.sample(50, seed=2).numeric)
    benchmark = FairSynthetic(n=200)
    items = benchmark.items()
    outputs = benchmark.predict(loaded, None, items, batch_size=64)
    assert len(outputs) == 200 and {o["prediction"] for o in outputs} <= {0, 1}
    assert set(benchmark.score(items[0], outputs[0]).values) == {"accuracy"}
    summary = benchmark.score_set(items, outputs)
    parity = summary["demographic_parity_difference"]
    assert 0 <= parity["ci95"][0] <= parity["mean"] <= parity["ci95"][1] <= 1
    assert 0 <= summary["fidelity_distance"]["mean"] and math.isfinite(summary["fidelity_distance"]["mean"])


def _tiny_vae():
    from distillbench.methods.classify.fair_latent import GaussianEncoder, RowDecoder

    return GaussianEncoder(14, 8, 8), RowDecoder(8, 8)


TINY_STEPS = {"teacher_steps": 10, "student_steps": 10, "batch_size": 32}


def tiny_recipe(tmp_path, **changes):
    raw = {"name": "tiny-fair", "kind": "tabular", "data": {"seed": 0, "train_size": 200}, "seeds": [0, 1],
           "methods": [{"name": "fair-latent", "fairness_weight": 0, **TINY_STEPS}, {"name": "fair-latent", **TINY_STEPS}],
           "benchmarks": [{"name": "fair-synthetic", "n": 100}], "output_dir": str(tmp_path / "out")}
    raw.update(changes)
    path = tmp_path / "fair.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_tabular_kind_runs_a_recipe_and_resumes(tmp_path, capsys):
    path = tiny_recipe(tmp_path)
    assert main(["run", str(path)]) == 0
    board, _ = load_board(tmp_path / "out" / "leaderboard.json")  # results-schema 1, as compare and the gate read it
    labels = ["fair-latent[batch_size=32,fairness_weight=0,student_steps=10,teacher_steps=10]",
              "fair-latent[batch_size=32,student_steps=10,teacher_steps=10]"]
    assert [row["row"] for row in board["rows"]] == labels
    metrics = ["fair-synthetic/accuracy", "fair-synthetic/demographic_parity_difference",
               "fair-synthetic/fidelity_distance"]
    for row in board["rows"]:
        assert row["method"] == "fair-latent" and row["status"] == "complete" and row["seeds"] == [0, 1]
        assert sorted(row["metrics"]) == metrics and row["metrics"][metrics[0]]["n"] == 100
        for metric in metrics:  # a set metric over seeds: the mean of the per-seed values, spread beside it
            per_seed = row["seed_spread"][metric]["per_seed"]
            assert set(per_seed) == {"0", "1"}
            assert row["metrics"][metric]["mean"] == pytest.approx(np.mean(list(per_seed.values())))
        low, high = row["metrics"][metrics[1]]["ci95"]  # a t interval over the two seeds' values
        assert low <= row["metrics"][metrics[1]]["mean"] <= high
        cost = row["cost"]  # the method's own steps and rows, not a budget's
        assert cost["steps"] == 20 and cost["train_rows"] == 20 * 32 and cost["teacher_forwards"] == 10 * 32
    folders = sorted(f for f in (tmp_path / "out" / "cells").iterdir() if f.is_dir())  # not the cells' lock files
    assert len(folders) == 4 and all((f / "model" / "model.safetensors").is_file() for f in folders)
    assert "training" in capsys.readouterr().err
    assert main(["run", str(path)]) == 0  # the second run reuses the saved generators and scores
    assert "training" not in capsys.readouterr().err
    assert load_board(tmp_path / "out" / "leaderboard.json")[0]["rows"] == board["rows"]

    # Another test draw is scored afresh with the same generators; another world trains new ones.
    path = tiny_recipe(tmp_path, benchmarks=[{"name": "fair-synthetic", "n": 100, "world_seed": 1}])
    assert main(["run", str(path)]) == 0
    assert "training" not in capsys.readouterr().err
    assert all(len(list(folder.glob("outputs-fair-synthetic-*.jsonl"))) == 2 for folder in folders)
    path = tiny_recipe(tmp_path, data={"seed": 0, "train_size": 150})
    assert main(["run", str(path)]) == 0
    assert capsys.readouterr().err.count("training") == 4


def test_the_committed_recipe_checks_offline(capsys):
    from tests.conftest import REPO

    assert main(["run", str(REPO / "recipes/pocket/fair-latent.yaml"), "--check"]) == 0
    out = capsys.readouterr().out
    assert "kind tabular, 0 reference row(s), 6 method cell(s) (3 seed(s))" in out
    assert "fair-latent[fairness_weight=0]" in out and "ok: the recipe validates and plans" in out


def test_each_kind_refuses_the_other_ones_components_and_a_tabular_recipe_has_no_models_or_budget(tmp_path):
    from distillbench.core.errors import UserInputError
    from distillbench.core.recipe import parse_recipe

    raw = {"name": "c", "kind": "image-classifier", "teacher": "arch:shapes-cnn-small", "student": "arch:shapes-cnn-small",
           "data": {"source": "pocket:shapes-shape", "size": 32},
           "budget": {"steps": 2, "batch_size": 8, "learning_rate": 0.01},
           "methods": ["ce", "fair-latent"], "benchmarks": ["fair-synthetic"]}
    with pytest.raises(UserInputError) as info:
        parse_recipe(raw, "r.yaml")
    assert info.value.problems == [
        "r.yaml: methods[1]: fair-latent trains tabular students, but this recipe's kind is image-classifier",
        "r.yaml: benchmarks[0]: fair-synthetic scores tabular students, but this recipe's kind is image-classifier"]
    tabular = {"name": "t", "kind": "tabular", "data": {}, "methods": ["ce"], "benchmarks": ["fair-synthetic"],
               "student": "arch:shapes-cnn-small", "budget": {"steps": 2, "batch_size": 8, "learning_rate": 0.01}}
    with pytest.raises(UserInputError) as info:
        parse_recipe(tabular, "t.yaml")
    assert info.value.problems == [
        "t.yaml: methods[0]: ce trains image-classifier students, but this recipe's kind is tabular",
        "t.yaml: student: not used: a tabular generator is fitted from the data alone",
        "t.yaml: budget: not used: a tabular method fits with its own options (fair-latent: teacher_steps, "
        "student_steps, batch_size, learning_rate)"]


def test_a_non_finite_loss_fails_the_cell_with_its_stage_and_step():
    from distillbench.core.errors import NonFiniteError
    from distillbench.methods.classify.fair_latent import _step

    parameter = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(NonFiniteError, match=r"non-finite fair-latent teacher loss \(nan\) at step 5") as info:
        _step(torch.optim.Adam([parameter]), {"reconstruction": parameter.sum() * float("nan")}, None, "teacher", 4)
    assert info.value.step == 5  # a CellFailure: the runner marks the cell failed and the other cells go on


def test_a_folder_without_a_saved_generator_is_refused(tmp_path):
    from distillbench.core.errors import UserInputError

    with pytest.raises(UserInputError, match="not a distillbench tabular generator"):
        load_generator(tmp_path)


def test_reconstruction_loss_matches_a_loop_in_value_and_gradient():
    from distillbench.methods.classify.fair_latent import reconstruction_loss
    from distillbench.kinds.tabular.data import ROW_BLOCKS
    from tests.conftest import assert_same_value_and_gradients, leaf_copies

    data = generate("train", 6)
    generator = torch.Generator().manual_seed(0)
    decoded = [torch.randn(6, width, generator=generator, dtype=torch.float64) for width in ROW_BLOCKS]
    logstd = torch.randn(ROW_BLOCKS[0], generator=generator, dtype=torch.float64) * 0.3
    fast_inputs, slow_inputs = leaf_copies(*decoded, logstd), leaf_copies(*decoded, logstd)
    fast = reconstruction_loss(list(fast_inputs[:-1]), fast_inputs[-1], data)
    blocks, log_sigma = slow_inputs[:-1], slow_inputs[-1]
    targets = [data.categorical[:, 0], data.categorical[:, 1], data.group, data.label]
    total = 0.0
    for row in range(6):  # −log N(x | μ, σ²) + ½·log 2π per numeric column, −log softmax per categorical one
        for column in range(ROW_BLOCKS[0]):
            normal = torch.distributions.Normal(blocks[0][row, column], log_sigma[column].exp())
            total = total - normal.log_prob(data.numeric[row, column].double()) - 0.5 * math.log(2 * math.pi)
        for logits, target in zip(blocks[1:], targets):
            total = total - torch.log_softmax(logits[row], dim=0)[target[row]]
    assert_same_value_and_gradients(fast, total / 6, fast_inputs, slow_inputs)
