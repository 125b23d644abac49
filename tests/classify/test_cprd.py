"""CPRD and InfoNCE losses against naive loops (values and gradients), and the properties the paper relies on."""

import json
import math
import random
from pathlib import Path

import pytest
import torch
import yaml

from distillbench.pocket.benchmarks.pocket_retrieval import PocketRetrieval, best_positive_rank, recall_values
from distillbench.cli.main import main
from distillbench.core.errors import UserInputError
from distillbench.core.recipe import parse_recipe
from distillbench.kinds.retrieval.batching import RetrievalBatching
from distillbench.kinds.retrieval.kind import STUDENT, Retrieval, initial_student
from distillbench.kinds.retrieval.models import CrossEncoder, DualEncoder, load_model, save_model
from distillbench.methods.classify.cprd import CPRD, cprd_loss, partial_ranking_targets
from distillbench.methods.classify.info_nce import InfoNCE, info_nce_loss
from distillbench.pocket.shapes_retrieval import VOCABULARY, caption_pairs, perturbed, tokenize

REPO = Path(__file__).resolve().parents[2]


def _scores(seed=0, batch=7):
    generator = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, batch, generator=generator, dtype=torch.float64) * 0.3
    teacher = torch.randn(batch, batch, generator=generator, dtype=torch.float64) * 2
    positives = torch.eye(batch, dtype=torch.bool)
    positives[1, 4] = positives[4, 1] = True  # pairs 1 and 4 share a caption
    return student, teacher, positives


def naive_cprd_direction(student, teacher, positives, hard_negatives, ranked, temperature):
    rows = []
    for i in range(len(student)):
        negatives = [c for c in range(len(student)) if not positives[i][c]]
        mined = sorted(negatives, key=lambda c: -float(student[i][c].detach()))[:hard_negatives]
        by_teacher = sorted(mined, key=lambda c: -float(teacher[i][c].detach()))
        valid = [c for c in by_teacher if float(teacher[i][c]) < float(teacher[i][i])]
        loss = 0.0
        for j, anchor in enumerate(valid[:ranked]):
            below = torch.stack([student[i][c] / temperature for c in valid[j:]])
            loss = loss - (student[i][anchor] / temperature - torch.logsumexp(below, 0))
        rows.append(loss if torch.is_tensor(loss) else student.sum() * 0.0)
    return sum(rows) / len(rows)


def naive_cprd(student, teacher, positives, hard_negatives, ranked, temperature):
    forward = naive_cprd_direction(student, teacher, positives, hard_negatives, ranked, temperature)
    backward = naive_cprd_direction(student.T, teacher.T, positives.T, hard_negatives, ranked, temperature)
    return (forward + backward) / 2


def naive_info_nce(scores, positives, temperature):
    total = 0.0
    for matrix, same in ((scores, positives), (scores.T, positives.T)):
        for i in range(len(matrix)):
            kept = [matrix[i][c] / temperature for c in range(len(matrix)) if c == i or not same[i][c]]
            total = total - (matrix[i][i] / temperature - torch.logsumexp(torch.stack(kept), 0))
    return total / (2 * len(scores))


def _same_value_and_gradient(fast_fn, slow_fn, student):
    a, b = student.clone().requires_grad_(), student.clone().requires_grad_()
    fast, slow = fast_fn(a), slow_fn(b)
    (grad_a,) = torch.autograd.grad(fast, a)
    (grad_b,) = torch.autograd.grad(slow, b)
    assert torch.allclose(fast, slow, atol=1e-10), (fast, slow)
    assert torch.allclose(grad_a, grad_b, atol=1e-10)


def test_cprd_loss_matches_a_naive_loop():
    for seed, (k, j) in enumerate([(8, 4), (3, 2), (5, 5), (2, 4)]):
        student, teacher, positives = _scores(seed)
        _same_value_and_gradient(lambda s: cprd_loss(s, teacher, positives, k, j, 0.07),
                                 lambda s: naive_cprd(s, teacher, positives, k, j, 0.07), student)


def test_info_nce_matches_a_naive_loop_and_drops_shared_captions_from_the_denominators():
    student, _, positives = _scores(3)
    _same_value_and_gradient(lambda s: info_nce_loss(s, positives, 0.07),
                             lambda s: naive_info_nce(s, positives, 0.07), student)
    plain = info_nce_loss(student, torch.eye(len(student), dtype=torch.bool), 0.07)
    assert not torch.isclose(plain, info_nce_loss(student, positives, 0.07))


def test_candidates_are_the_students_hardest_negatives_in_the_teachers_order():
    student = torch.tensor([[9.0, 5.0, 4.0, 3.0, 1.0]] * 5)
    teacher = torch.tensor([[10.0, 1.0, 3.0, 2.0, 9.0]] * 5)
    positives = torch.eye(5, dtype=torch.bool)
    candidates, valid = partial_ranking_targets(student, teacher, positives, hard_negatives=3)
    # Row 0: the student's top 3 negatives are columns 1, 2, 3; the teacher orders them 2, 3, 1.
    assert candidates[0].tolist() == [2, 3, 1] and valid[0].all()
    # Row 4: its true match scores 9 for the teacher; column 0 (teacher 10) is mined and invalid.
    assert candidates[4].tolist()[0] == 0 and not valid[4, 0] and valid[4, 1:].all()


def test_the_loss_rewards_the_teachers_order_and_ignores_easy_negatives():
    teacher = torch.tensor([[5.0, 4.0, 3.0, 2.0, -9.0]]).repeat(5, 1)
    teacher.fill_diagonal_(10.0)
    positives = torch.eye(5, dtype=torch.bool)
    agreeing = torch.tensor([[1.0, 0.8, 0.6, 0.4, 0.2]]).repeat(5, 1)
    reversed_ = torch.tensor([[1.0, 0.4, 0.6, 0.8, 0.2]]).repeat(5, 1)
    for matrix in (agreeing, reversed_):
        matrix.fill_diagonal_(1.0)
    kwargs = dict(hard_negatives=3, ranked=3, temperature=0.1)
    assert cprd_loss(agreeing, teacher, positives, **kwargs) < cprd_loss(
        reversed_, teacher, positives, **kwargs)
    # Moving an easy negative (outside the student's top K) does not change the loss.
    moved = agreeing.clone()
    moved[0, 4] = -5.0
    assert torch.isclose(cprd_loss(agreeing, teacher, positives, **kwargs), cprd_loss(moved, teacher, positives, **kwargs))


def test_a_batch_of_one_caption_has_nothing_to_rank():
    student = torch.randn(4, 4, dtype=torch.float64, requires_grad=True)
    everything = torch.ones(4, 4, dtype=torch.bool)
    loss = cprd_loss(student, torch.randn(4, 4, dtype=torch.float64), everything)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(student.grad).all()


def test_cprd_defaults_and_terms():
    method = CPRD()
    assert (method.temperature, method.hard_negatives, method.ranked, method.distill_weight) == (0.07, 8, 4, 1.0)
    assert method.data_kind == "retrieval" and method.uses_teacher
    assert math.isclose(method.temperature, 0.07)


# --- the pocket retrieval world, the benchmark and a tiny end-to-end run -------------------------------------


def test_ranks_count_ties_against_the_model():
    assert best_positive_rank([0.9, 0.5, 0.1], [0]) == 1
    assert best_positive_rank([0.5, 0.9, 0.5], [0]) == 3  # one better, one tied: both above the positive
    assert best_positive_rank([0.0] * 20, [3]) == 20  # a constant model never hits by index order
    assert best_positive_rank([0.2, 0.7, 0.9, 0.1], [0, 2]) == 1  # the best of several ground truths counts
    assert best_positive_rank([float("nan"), 0.3, 0.1], [0]) == 3  # NaN is the lowest score
    assert recall_values("i2t", 5) == {"i2t_r1": 0.0, "i2t_r5": 1.0, "i2t_r10": 1.0}
    with pytest.raises(ValueError):
        best_positive_rank([0.1, 0.2], [])


def test_duplicate_captions_are_one_gallery_entry_with_every_image_as_ground_truth():
    benchmark = PocketRetrieval(n=60)
    items = benchmark.items()
    images = [i for i in items if i["direction"] == "i2t"]
    texts = [i for i in items if i["direction"] == "t2i"]
    assert len(images) == 60 and len(texts) == len({i["answer"] for i in images}) < 60  # pocket captions repeat
    assert sorted(image for t in texts for image in t["positives"]) == list(range(60))
    assert len({i["id"] for i in items}) == len(items)
    shared = next(t for t in texts if len(t["positives"]) > 1)
    # A model that ranks one of the caption's images first hits, whichever one it is.
    assert best_positive_rank([1.0 if i == shared["positives"][-1] else 0.0 for i in range(60)], shared["positives"]) == 1
    with pytest.raises(UserInputError):
        benchmark.score(images[0], "first")


def test_a_perfect_scorer_gets_full_recall_and_a_constant_one_gets_none():
    benchmark = PocketRetrieval(n=40)
    pairs, gallery, index, _, _ = benchmark._data

    class Oracle(torch.nn.Module):
        def __init__(self, constant):
            super().__init__()
            self.constant = constant
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def score_matrix(self, images, tokens):
            truth = torch.zeros(len(images), len(tokens))
            if not self.constant:
                for image, caption in enumerate(pairs.captions):
                    truth[image, index[caption]] = 1.0
            return truth

    for constant, expected in ((False, 1.0), (True, 0.0)):
        items = benchmark.items()
        ranks = benchmark.predict(Oracle(constant), None, items, batch_size=8)
        r1 = [benchmark.score(i, r).values[f"{i['direction']}_r1"] for i, r in zip(items, ranks)]
        assert sum(r1) / len(r1) == expected


def test_captions_tokenize_and_perturbations_change_them():
    pairs = caption_pairs("train", 50)
    assert pairs.tokens.shape == (50, 20) and all(VOCABULARY[t] for t in pairs.tokens[0])
    with pytest.raises(ValueError):
        tokenize("a photo of a red dragon")
    rng = random.Random(0)
    for row in pairs.tokens.tolist():
        edited = perturbed(row, rng)
        assert edited is None or edited != row


def test_models_round_trip_through_safetensors(tmp_path):
    pairs = caption_pairs("train", 8)
    for model in (DualEncoder(len(VOCABULARY)), CrossEncoder(len(VOCABULARY))):
        model.eval()
        save_model(model, tmp_path / model.config["kind"])
        loaded = load_model(tmp_path / model.config["kind"])
        images = pairs.image_batch(range(8))
        assert torch.allclose(model.score_matrix(images, pairs.tokens), loaded.score_matrix(images, pairs.tokens))
    cross = CrossEncoder(len(VOCABULARY)).eval()
    assert torch.allclose(cross.score_matrix(images, pairs.tokens).diagonal(), cross(images, pairs.tokens), atol=1e-5)


def test_retrieval_batches_carry_shared_captions_and_teacher_scores():
    pairs = caption_pairs("train", 40)
    batching = RetrievalBatching(pairs, 8)
    batch = batching.collate(pairs, list(range(8)), 0, 0, 0, "cpu")
    assert batch["positives"].diagonal().all() and batch["captions"].shape == (8, 20)
    assert batching.add_signals(batch, InfoNCE(), {}) == 0 and "teacher_scores" not in batch
    assert batching.add_signals(batch, CPRD(), {"teacher": CrossEncoder(len(VOCABULARY)).eval()}) == 64
    assert batch["teacher_scores"].shape == (8, 8)


TINY_RECIPE = """
name: retrieval-tiny
kind: retrieval
teacher: pocket:shapes-cross-encoder
student: arch:dual-encoder
student_options: {{image_widths: [4], embed_dim: 8, word_dim: 4}}
data: {{train_size: 32}}
budget: {{steps: 2, batch_size: 8, learning_rate: 1.0e-3}}
seeds: [1]
methods: [info-nce, {{name: cprd, hard_negatives: 3, ranked: 2}}]
benchmarks: [{{name: pocket-retrieval, n: 24}}]
output_dir: {out}
leaderboard: {{versus: info-nce}}
"""


def retrieval_recipe(**changes):
    raw = yaml.safe_load(TINY_RECIPE.format(out="runs/retrieval-tiny"))
    raw.update(changes)
    return raw


def test_a_retrieval_recipe_runs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILLBENCH_ZOO_SCALE", "tiny")
    monkeypatch.setenv("DISTILLBENCH_CACHE", str(tmp_path / "cache"))
    recipe, out = tmp_path / "retrieval.yaml", tmp_path / "out"
    recipe.write_text(TINY_RECIPE.format(out=out))
    assert main(["run", str(recipe)]) == 0
    board = json.loads((out / "leaderboard.json").read_text())
    rows = {row["row"]: row for row in board["rows"]}
    assert list(rows) == ["teacher", "info-nce", "cprd[hard_negatives=3,ranked=2]"]
    metrics = {f"pocket-retrieval/{d}_r{k}" for d in ("i2t", "t2i") for k in (1, 5, 10)}
    assert all(set(row["metrics"]) == metrics and row["status"] == "complete" for row in rows.values())
    teacher, info_nce, cprd = rows.values()
    assert teacher["kind"] == "reference" and teacher["model"] == "pocket:shapes-cross-encoder"
    assert cprd["seeds"] == [1] and cprd["metrics"]["pocket-retrieval/i2t_r1"]["n"] == 24
    assert cprd["cost"]["teacher_forwards"] > 0 == info_nce["cost"]["teacher_forwards"]
    [cell] = (out / "cells").glob("cprd*-seed1-*")
    assert (cell / "model" / "model.safetensors").is_file()
    # The baseline's paired comparison, from the one leaderboard builder.
    assert "Head to head against `info-nce`" in (out / "leaderboard.md").read_text()
    # Another budget is another cell folder: an edited recipe never resumes the old one's checkpoint.
    recipe.write_text(recipe.read_text().replace("learning_rate: 1.0e-3", "learning_rate: 2.0e-3"))
    assert main(["run", str(recipe)]) == 0
    assert len(list((out / "cells").glob("cprd*-seed1-*"))) == 2


def test_every_method_of_a_seed_starts_from_the_same_student(tmp_path):
    kind = Retrieval(parse_recipe(retrieval_recipe()), tmp_path)
    options = {"image_widths": [4], "embed_dim": 8, "word_dim": 4}
    state = torch.random.get_rng_state()
    first, again, other = (kind.load(STUDENT, seed=seed)[0].state_dict() for seed in (1, 1, 2))
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left alone
    assert all(torch.equal(first[k], again[k]) and torch.equal(first[k], v)
               for k, v in initial_student(1, options, len(VOCABULARY)).state_dict().items())
    assert not all(torch.equal(first[k], other[k]) for k in first)
    # The student's options key its cells: another size is another student.
    bigger = Retrieval(parse_recipe(retrieval_recipe(student_options={**options, "embed_dim": 16})), tmp_path)
    assert kind.fingerprint(STUDENT) != bigger.fingerprint(STUDENT)


@pytest.mark.parametrize("change, expected", [
    ({"student": "arch:shapes-cnn-small"}, "student: must be one of 'arch:dual-encoder'"),
    ({"teacher": "pocket:teacher-sft"}, "teacher: pocket:teacher-sft is not a pocket retrieval model "
                                        "(pocket:shapes-cross-encoder) or a folder with a retrieval model's config.json"),
    ({"student_options": {"embed_dim": 0}}, "student_options.embed_dim: must be > 0"),
    ({"data": {"size": 32}}, "data.size: unknown field; did you mean 'train_size'?"),
    ({"reference_teacher": "pocket:shapes-cross-encoder"}, "reference_teacher: not used by dual encoders"),
    ({"methods": ["hinton-kd"]}, "methods[0]: hinton-kd trains image-classifier students, but this recipe's kind is "
                                 "retrieval"),
])
def test_bad_retrieval_recipes_name_the_field(change, expected):
    with pytest.raises(UserInputError) as info:
        parse_recipe(retrieval_recipe(**change), "r.yaml")
    assert f"r.yaml: {expected}" in info.value.problems


def test_the_committed_retrieval_recipe_checks_offline(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILLBENCH_CACHE", str(tmp_path / "cache"))
    assert main(["run", str(REPO / "recipes/pocket/retrieval.yaml"), "--check"]) == 0
    assert "ok: the recipe validates and plans" in capsys.readouterr().out
    assert not (tmp_path / "cache").exists()  # the teacher is not built


@pytest.mark.parametrize("entry, expected", [
    ({"methods": ["cprd"]}, "methods[0]: cprd trains retrieval students, but this recipe's kind is image-classifier"),
    ({"benchmarks": [{"name": "pocket-retrieval"}]},
     "benchmarks[0]: pocket-retrieval scores retrieval students, but this recipe's kind is image-classifier")])
def test_other_kinds_send_retrieval_components_to_the_retrieval_kind(entry, expected):
    raw = {"name": "r", "kind": "image-classifier", "teacher": "pocket:shapes-teacher-many", "student": "arch:shapes-cnn-small",
           "data": {"source": "pocket:shapes-many"}, "budget": {"steps": 1, "batch_size": 2, "learning_rate": 0.1},
           "methods": ["ce"], "benchmarks": [{"name": "top1"}], **entry}
    with pytest.raises(UserInputError) as info:
        parse_recipe(raw)
    assert f"recipe: {expected}" in info.value.problems
