"""Masked-image-modelling distillation: hybrid-distill and dmjd losses against naive references, their masks,
the pocket ViT, and a tiny run through the harness scored by the linear probe."""

import json

import pytest
import torch
import yaml

from distillbench.kinds.image_classifier.classifiers import initialised
from distillbench.cli.main import main
from distillbench.core.errors import UserInputError
from distillbench.methods.classify.dmjd import DMJD, disjoint_masks, dmjd_loss
from distillbench.methods.classify.hybrid_distill import HybridDistill, hybrid_distill_loss, redundancy_keep
from distillbench.kinds.image_classifier.vit import NUM_PATCHES, encode, patchify


def naive_hybrid(student_features, teacher_features, student_maps, teacher_maps, alpha, beta, smooth_beta):
    """Loops: smooth L1 element by element; KL row by row of every head, image and layer."""
    def smooth_l1(a, b):
        d = abs(a - b)
        return 0.5 * d**2 / smooth_beta if d < smooth_beta else d - 0.5 * smooth_beta

    elements = [smooth_l1(s, t) for s, t in zip(student_features.flatten(), teacher_features.flatten())]
    feature = sum(elements) / len(elements)
    layers = []
    for s_map, t_map in zip(student_maps, teacher_maps):
        rows = []
        for b in range(s_map.shape[0]):
            for h in range(s_map.shape[1]):
                for q in range(s_map.shape[2]):
                    rows.append(sum(t * (torch.log(t) - torch.log(s)) for s, t in zip(s_map[b, h, q], t_map[b, h, q])))
        layers.append(sum(rows) / len(rows))
    return alpha * feature, beta * sum(layers) / len(layers)


def test_hybrid_distill_loss_matches_a_naive_loop_in_value_and_gradient():
    torch.manual_seed(0)
    student = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(2, 3, 5, dtype=torch.float64) * 2
    logits = torch.randn(2, 2, 2, 4, 4, dtype=torch.float64, requires_grad=True)  # layer, B, H, Q, Q
    student_maps = list(logits.softmax(-1))
    teacher_maps = list(torch.randn(2, 2, 2, 4, 4, dtype=torch.float64).softmax(-1))
    fast = hybrid_distill_loss(student, teacher, student_maps, teacher_maps, 0.7, 1.3, smooth_l1_beta=1.5)
    slow = naive_hybrid(student, teacher, student_maps, teacher_maps, 0.7, 1.3, 1.5)
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a.double(), b)
        for grad_a, grad_b in zip(torch.autograd.grad(a, [student, logits], retain_graph=True, allow_unused=True),
                                  torch.autograd.grad(b, [student, logits], retain_graph=True, allow_unused=True)):
            assert (grad_a is None) == (grad_b is None)
            if grad_a is not None:
                torch.testing.assert_close(grad_a.double(), grad_b)
    same = hybrid_distill_loss(teacher, teacher, teacher_maps, teacher_maps)
    assert float(same[0]) == 0 and abs(float(same[1])) < 1e-12


def test_hybrid_distill_refuses_mismatched_layer_counts_and_keeps_the_most_attended_patches():
    maps = [torch.full((1, 1, 2, 2), 0.5)]
    with pytest.raises(ValueError, match="1 student attention maps, 2 teacher"):
        hybrid_distill_loss(torch.zeros(1, 1, 2), torch.zeros(1, 1, 2), maps, maps * 2)
    attention = torch.tensor([[0.1, 0.4, 0.2, 0.3], [0.5, 0.1, 0.3, 0.1]])
    assert redundancy_keep(attention, 0.5).tolist() == [[1, 3], [0, 2]]
    assert redundancy_keep(attention, 0.0).tolist() == [[0, 1, 2, 3]] * 2
    method = HybridDistill(final_drop_ratio=0.6)
    assert [method.drop_ratio(stage) for stage in range(method.stages)] == pytest.approx([0, 0.2, 0.4, 0.6])


def test_disjoint_masks_follow_the_release_rule():
    torch.manual_seed(0)
    keep, masked = disjoint_masks(5, 16, mask_ratio=0.6, pred_ratio=1.0)
    assert keep.shape == (2, 5, 6) and masked.shape == (2, 5, 16)
    assert (masked.sum(2) == 10).all()  # each view keeps the masking rate
    assert (masked[0] | masked[1]).all()  # at p = 1 the two views predict every patch together
    assert not (~masked[0] & ~masked[1]).any()  # so no patch is visible in both
    for view in range(2):  # keep lists the visible patches, ascending
        assert all(sorted(row) == row for row in keep[view].tolist())
        assert torch.equal(torch.zeros_like(masked[view]).scatter_(1, keep[view], True), ~masked[view])
    _, partial = disjoint_masks(200, 20, mask_ratio=0.5, pred_ratio=0.75)
    assert ((partial[0] | partial[1]).sum(1) == 15).all()  # p = 0.75: min(p − r, r) · L = 5 extra patches
    torch.manual_seed(3)
    again = disjoint_masks(5, 16, 0.6)
    torch.manual_seed(3)
    assert all(torch.equal(a, b) for a, b in zip(again, disjoint_masks(5, 16, 0.6)))


def naive_dmjd(masked_predictions, visible_predictions, targets, masked, keep, theta, beta):
    masked_terms, visible_terms = [], []
    for n in range(len(targets)):
        for i in range(targets.shape[1]):
            if masked[n, i]:
                masked_terms.append(((masked_predictions[n, i] - targets[n, i]) ** 2).mean())
        for k, i in enumerate(keep[n].tolist()):
            for p, t in zip(visible_predictions[n, k], targets[n, i]):
                d = abs(p - t)
                visible_terms.append(0.5 * d**2 / beta if d < beta else d - 0.5 * beta)
    return sum(masked_terms) / len(masked_terms), theta * sum(visible_terms) / len(visible_terms)


def test_dmjd_loss_matches_a_naive_loop_in_value_and_gradient():
    torch.manual_seed(1)
    keep, masked = (x.flatten(0, 1) for x in disjoint_masks(2, 8, 0.5))
    masked_predictions = torch.randn(4, 8, 3, dtype=torch.float64, requires_grad=True)
    visible_predictions = (3 * torch.randn(4, 4, 3, dtype=torch.float64)).requires_grad_()
    targets = torch.randn(4, 8, 3, dtype=torch.float64)
    fast = dmjd_loss(masked_predictions, visible_predictions, targets, masked, keep, theta=0.5, smooth_l1_beta=2.0)
    slow = naive_dmjd(masked_predictions, visible_predictions, targets, masked, keep, 0.5, 2.0)
    inputs = [masked_predictions, visible_predictions]
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a.double(), b)
        for grad_a, grad_b in zip(torch.autograd.grad(a, inputs, retain_graph=True, allow_unused=True),
                                  torch.autograd.grad(b, inputs, retain_graph=True, allow_unused=True)):
            if grad_a is None or grad_b is None:
                assert grad_a is None and (grad_b is None or not grad_b.any())
            else:
                torch.testing.assert_close(grad_a.double(), grad_b)
    # The masked branch ignores visible patches' predictions, whatever they are.
    changed = masked_predictions.detach().clone()
    changed[~masked] += 100
    assert torch.isclose(dmjd_loss(changed, visible_predictions, targets, masked, keep)[0], fast[0])


def test_the_pocket_vit_encodes_chosen_patches_like_transformers_and_patchifies_like_it():
    from transformers import ViTMAEForPreTraining

    student = initialised("shapes-vit-tiny", 30, seed=0).eval()
    images = torch.randn(3, 3, 32, 32)
    vit = student.network.vit
    tokens, maps = encode(vit, images, attentions=True)
    assert tokens.shape == (3, 1 + NUM_PATCHES, 64) and len(maps) == 4 and maps[0].shape == (3, 4, 17, 17)
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(3, 4, 17))
    keep = torch.tensor([[0, 5, 9]] * 3)
    # MAE-style dropping: the kept patches alone, as transformers' ViTMAEModel runs them after its own masking.
    vit.config.mask_ratio = 1 - 3 / NUM_PATCHES
    noise = torch.ones(3, NUM_PATCHES).scatter_(1, keep, torch.tensor([[0.0, 0.1, 0.2]] * 3))
    reference = vit(pixel_values=images, noise=noise).last_hidden_state
    torch.testing.assert_close(encode(vit, images, keep)[0], reference, atol=1e-5, rtol=1e-5)
    pretraining = ViTMAEForPreTraining(vit.config)
    torch.testing.assert_close(patchify(images), pretraining.patchify(images))


def test_mim_methods_refuse_a_cnn_student():
    cnn = initialised("shapes-cnn-small", 30, seed=0)
    for method in (HybridDistill(), DMJD()):
        with pytest.raises(UserInputError, match="arch:shapes-vit-tiny"):
            method.training_module(cnn)


def test_mim_methods_train_only_the_student_and_their_heads():
    from distillbench.kinds.image_classifier.images import load_image_dataset

    data = load_image_dataset("pocket:shapes-many", "train", 16)
    batch = {"images": data.batch(range(8)), "labels": data.labels[:8], "epoch": 1, "stage": 3}
    for method in (HybridDistill(), DMJD(), DMJD(target="pixels")):
        torch.manual_seed(0)
        module = method.training_module(initialised("shapes-vit-tiny", 30, seed=0))
        module.train()
        assert not module.teachers.training  # the feature network's batch norm keeps its statistics
        terms = method.loss(module, batch)
        sum(terms.values()).backward()
        assert all(torch.isfinite(v) and v > 0 for v in terms.values())
        assert all(p.grad is None for p in module.teachers.parameters())
        assert module.student.network.vit.layers[0].attention.q_proj.weight.grad.abs().sum() > 0
        assert method.trained_model(module) is module.student


def test_a_tiny_mim_run_is_scored_by_the_linear_probe(tmp_path):
    # The MIM methods name their own teachers; an arch: teacher adds no reference row (and builds nothing).
    raw = {"name": "mim", "kind": "image-classifier", "teacher": "arch:shapes-cnn-small", "student": "arch:shapes-vit-tiny",
           "data": {"source": "pocket:shapes-many", "size": 32},
           "budget": {"steps": 2, "batch_size": 8, "learning_rate": 1e-3, "weight_decay": 0.05},
           "seeds": [0], "methods": ["hybrid-distill", {"name": "dmjd", "target": "pixels"}],
           "benchmarks": [{"name": "linear-probe", "train_n": 48, "n": 24}], "output_dir": str(tmp_path / "out")}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path)]) == 0
    rows = {row["row"]: row for row in json.loads((tmp_path / "out" / "leaderboard.json").read_text())["rows"]}
    assert set(rows) == {"hybrid-distill", "dmjd[target=pixels]"}
    assert all(row["metrics"]["linear-probe/accuracy"]["n"] == 24 for row in rows.values())
    saved = next((tmp_path / "out" / "cells").glob("hybrid-distill-*")) / "model" / "classifier.json"
    assert json.loads(saved.read_text())["architecture"] == "shapes-vit-tiny"


def test_the_pocket_mim_recipe_is_valid_and_has_a_teacherless_baseline():
    from distillbench.core.recipe import load_recipe
    from tests.conftest import REPO

    parsed = load_recipe(REPO / "recipes/pocket/mim-distill.yaml")
    assert parsed.student == "arch:shapes-vit-tiny" and len(parsed.seeds) >= 3
    labels = {m.label for m in parsed.methods}
    assert {"dmjd", "hybrid-distill", "dmjd[target=pixels]"} <= labels
    assert [b.name for b in parsed.benchmarks] == ["linear-probe"]


@pytest.mark.parametrize("relation_layers, matched", [("intermediate", 3), ("all", 4)])
def test_hybrid_distill_matches_attention_at_the_intermediate_layers_by_default(monkeypatch, relation_layers,
                                                                                matched):
    # the camera-ready abstract: the MIM teacher's relations "at intermediate layers", the CL teacher's
    # features at the output; the tiny ViT has 4 layers
    from distillbench.kinds.image_classifier.images import load_image_dataset
    from distillbench.methods.classify import hybrid_distill

    counts = []

    def counting(student_features, teacher_features, student_maps, teacher_maps, *args):
        counts.append((len(student_maps), len(teacher_maps)))
        return hybrid_distill_loss(student_features, teacher_features, student_maps, teacher_maps, *args)

    monkeypatch.setattr(hybrid_distill, "hybrid_distill_loss", counting)
    data = load_image_dataset("pocket:shapes-many", "train", 8)
    method = HybridDistill() if relation_layers == "intermediate" else HybridDistill(relation_layers="all")
    module = method.training_module(initialised("shapes-vit-tiny", 30, seed=0))
    method.loss(module, {"images": data.batch(range(4)), "labels": data.labels[:4], "stage": 0})
    assert counts == [(matched, matched)]
