"""DisWOT's training-free score against a naive loop (values and gradients), and its behaviour on real candidates."""

import json
import math

import torch

from distillbench.kinds.image_classifier.classifiers import initialised
from distillbench.methods.classify.diswot import (DisWOT, diswot_score, feature_maps_and_class_gradients,
                                                  gaussian_initialise, relation_distance,
                                                  score_candidate, semantic_distance)


def naive_normalised_gram(rows):
    flat = [row.flatten() for row in rows]
    gram = [[torch.dot(a, b) for b in flat] for a in flat]
    result = []
    for line in gram:
        norm = torch.sqrt(sum(value**2 for value in line))
        result.append([value / norm for value in line])
    return result


def naive_distance(teacher, student):
    a, b = naive_normalised_gram(teacher), naive_normalised_gram(student)
    n = len(a)
    return sum((a[i][j] - b[i][j]) ** 2 for i in range(n) for j in range(n)) / n**2


def test_score_matches_a_naive_loop_in_value_and_gradient():
    generator = torch.Generator().manual_seed(0)
    teacher_grads = torch.randn(5, 12, generator=generator, dtype=torch.float64)
    teacher_maps = torch.randn(6, 4, 3, 3, generator=generator, dtype=torch.float64)
    student_grads = torch.randn(5, 7, generator=generator, dtype=torch.float64)
    student_maps = torch.randn(6, 2, 3, 3, generator=generator, dtype=torch.float64)
    fast_inputs = [t.clone().requires_grad_() for t in (student_grads, student_maps)]
    slow_inputs = [t.clone().requires_grad_() for t in (student_grads, student_maps)]
    fast = diswot_score(teacher_grads, fast_inputs[0], teacher_maps, fast_inputs[1])
    slow = -(naive_distance(teacher_grads, slow_inputs[0]) + naive_distance(teacher_maps, slow_inputs[1]))
    assert torch.allclose(fast, slow, atol=1e-12)
    for a, b in zip(torch.autograd.grad(fast, fast_inputs), torch.autograd.grad(slow, slow_inputs)):
        assert torch.allclose(a, b, atol=1e-12)


def test_the_distances_vanish_on_identical_relations_and_ignore_scale():
    features = torch.randn(8, 16, dtype=torch.float64)
    assert relation_distance(features, 3.0 * features).item() < 1e-24
    rotated = features @ torch.linalg.qr(torch.randn(16, 16, dtype=torch.float64))[0]  # same Gram matrix
    assert semantic_distance(features, rotated).item() < 1e-20
    assert relation_distance(features, torch.randn(8, 16, dtype=torch.float64)).item() > 1e-3


def test_gaussian_init_follows_the_authors_code():
    model = initialised("shapes-cnn-small", 3, seed=0)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        gaussian_initialise(model.network)
    conv = model.network.trunk[0]
    norm = model.network.trunk[1]
    assert abs(conv.weight.std().item() - 1.0) < 0.3  # N(0, 1), not Kaiming's small init
    assert torch.equal(norm.weight, torch.ones_like(norm.weight)) and not norm.bias.any()


def test_score_candidate_is_deterministic_and_finite_for_pocket_cnns():
    teacher, student = initialised("shapes-cnn", 3, 0), initialised("shapes-cnn-small", 3, 0)
    generator = torch.Generator().manual_seed(0)
    images, labels = torch.randn(16, 3, 32, 32, generator=generator), torch.randint(0, 3, (16,), generator=generator)
    first = score_candidate(teacher, student, images, labels, seed=0)
    assert math.isfinite(first) and first < 0
    assert first == score_candidate(teacher, student, images, labels, seed=0)
    # A network measured against itself has zero relation and semantic distance: the best possible score.
    maps, gradients = feature_maps_and_class_gradients(teacher, images, labels)
    assert float(diswot_score(gradients, gradients, maps, maps)) == 0.0
    # maps of different spatial sizes are compared as they are (B × B relations, nothing resized)
    small = torch.nn.functional.avg_pool2d(maps, 2)
    assert math.isfinite(float(diswot_score(gradients, gradients, maps, small)))


def test_diswot_distils_with_kd_defaults():
    method = DisWOT()
    assert (method.temperature, method.ce_weight, method.kd_weight, method.search_batch_size) == (4.0, 0.1, 0.9, 128)
    assert method.needs == ("teacher_logits",)


TINY_RECIPE = """
name: tiny-diswot
kind: image-classifier
teacher: pocket:shapes-teacher-many
student: arch:shapes-cnn-small
data: {source: "pocket:shapes-many", size: 64, augment: flip}
budget: {steps: 2, batch_size: 16, learning_rate: 2.0e-3, weight_decay: 5.0e-4}
seeds: [0]
methods: [diswot]
benchmarks: [{name: top1, dataset: "pocket:shapes-many", n: 32}]
"""


def test_the_report_correlates_scores_with_distilled_accuracy_read_from_the_runs(tmp_path, monkeypatch):
    from distillbench.cli.main import main
    from distillbench.core.store import Store
    from distillbench.pocket import diswot_report

    recipe = tmp_path / "diswot.yaml"
    recipe.write_text(TINY_RECIPE)
    monkeypatch.setattr(diswot_report, "RECIPE", recipe)
    monkeypatch.setattr(diswot_report, "CANDIDATES", ("shapes-cnn-4-8-8", "shapes-cnn-small", "shapes-cnn-8-8-16"))
    from distillbench.core import kind

    threads, train = [], kind.train

    def counting_threads(*args, **kwargs):
        threads.append(torch.get_num_threads())
        return train(*args, **kwargs)

    monkeypatch.setattr(kind, "train", counting_threads)
    before = torch.get_num_threads()
    out = tmp_path / "report.json"
    assert main(["report", "diswot", "--runs", str(tmp_path / "runs"), "--out", str(out)]) == 0
    assert threads == [1, 1, 1] and torch.get_num_threads() == before  # the report's one thread, then restored
    result = json.loads(out.read_text())
    assert result["report"] == "diswot" and result["test_size"] == 32 and result["train_size"] == 64
    assert [row["stages"] for row in result["candidates"]] == [[[4], [8], [8]], [[8], [16], [32]], [[8], [8], [16]]]
    assert [row["parameters"] for row in result["candidates"]] == [1522, 8038, 2998]
    assert all(row["diswot_score"] < 0 for row in result["candidates"])
    rho = result["spearman_score_vs_top1"]["rho"]
    assert math.isnan(rho) or -1 <= rho <= 1
    # Each candidate is an ordinary run of the recipe, its student replaced; the top-1 is the store's.
    for row in result["candidates"]:
        run = tmp_path / "runs" / f"tiny-diswot-{row['architecture']}"
        board = json.loads((run / "leaderboard.json").read_text())
        (cell,) = [r for r in board["rows"] if r["row"] == "diswot"]
        assert board["recipe"]["student"] == f"arch:{row['architecture']}"
        assert row["distilled_top1"] == round(cell["metrics"]["top1/accuracy"]["mean"], 4)
        store = Store(run / "results.sqlite")
        try:
            assert store.cell(cell["cells"][0])["status"] == "ready"
        finally:
            store.close()
    assert not any((tmp_path / "runs").glob("*/cells/*/checkpoint"))


def test_an_unknown_report_is_one_line_with_the_known_ones(capsys):
    from distillbench.cli.main import main

    assert main(["report", "diswott"]) == 2
    assert "unknown report 'diswott'; did you mean 'diswot'?" in capsys.readouterr().err


def test_the_committed_recipe_checks_and_the_report_varies_only_its_student(capsys):
    from distillbench.cli.main import main
    from distillbench.pocket.diswot_report import RECIPE, DisWOTReport

    assert main(["run", str(RECIPE), "--check"]) == 0
    assert "ok: the recipe validates and plans" in capsys.readouterr().out
    recipes = DisWOTReport().recipes()
    assert [r.student for r in recipes] == ["arch:shapes-cnn-4-8-8", "arch:shapes-cnn-4-8-16", "arch:shapes-cnn-8-8-16",
                                            "arch:shapes-cnn-small", "arch:shapes-cnn-8-16+16-32",
                                            "arch:shapes-cnn-16-16-32", "arch:shapes-cnn-8+8-16-32+32",
                                            "arch:shapes-cnn-16-32-64"]
    assert len({r.name for r in recipes}) == 8
    assert all(r.model_dump(exclude={"name", "student"}) == recipes[0].model_dump(exclude={"name", "student"})
               for r in recipes)
