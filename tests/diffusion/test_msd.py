"""MSD (methods/diffusion/msd.py): routing by class blocks, the routed model's forward and folder, the loss as
each student's DMD2 loss on its own samples weighted by their share, gradients that stay with their owner, and
a cell end to end scored with prompts."""


import pytest
import torch
from diffusers import DDPMScheduler

from tests.diffusion.conftest import run_points
from distillbench.kinds.diffusion.points import (Mixture, PointDenoiser, PointModel, RoutedDenoiser, load_point_model,
                                                 route, save_point_model)
from distillbench.methods.diffusion.dmd2 import DMD2
from distillbench.methods.diffusion.msd import MSD, owned_rows

SCHEDULER = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                          clip_sample=False)


def test_classes_go_to_students_in_equal_blocks_and_the_empty_prompt_by_position():
    labels = torch.tensor([0, 1, 2, 3, 4, 4, 4])  # 4: the empty prompt of a 4-class world
    assert route(labels, 4, 2).tolist() == [0, 0, 1, 1, 0, 1, 0]
    assert route(labels, 4, 4).tolist() == [0, 1, 2, 3, 0, 1, 2]


def _students(count=2):
    torch.manual_seed(0)
    return [PointDenoiser(classes=4, hidden=16, layers=1).eval() for _ in range(count)]


@torch.no_grad()
def test_a_routed_model_denoises_each_sample_with_its_owner_and_round_trips_its_folder(tmp_path):
    students = _students()
    routed = RoutedDenoiser(students)
    sample, labels = torch.randn(5, 2), torch.tensor([3, 0, 1, 2, 4])
    output = routed(sample, torch.tensor(500), labels)
    for row, owner in enumerate(route(labels, 4, 2).tolist()):
        assert torch.allclose(output[row], students[owner](sample[row:row + 1], torch.tensor([500]), labels[row:row + 1])[0])
    save_point_model(routed, PointModel(dict(SCHEDULER.config), Mixture(((0.0, 0.0),), 0.1, (1.0,), (0,))), tmp_path)
    loaded, _ = load_point_model(tmp_path)
    assert isinstance(loaded, RoutedDenoiser) and torch.allclose(loaded(sample, torch.tensor(500), labels), output)


def _batch(labels, teacher, seed=3):
    torch.manual_seed(seed)
    return {"class_labels": labels, "noise": torch.randn(len(labels), 2), "clean": torch.randn(len(labels), 2),
            "step": 0, "scheduler": SCHEDULER, "teacher": teacher, "generator": torch.Generator().manual_seed(seed)}


def test_the_loss_is_each_students_dmd2_loss_on_its_samples_weighted_by_their_share():
    teacher = _students(1)[0].requires_grad_(False)
    method = MSD(students=2, gan_generator_weight=0.0, generator_every=1)
    module = method.training_module(PointDenoiser(classes=4, hidden=16, layers=1))
    for part in module.parts:  # students unlike each other and the teacher
        for parameter in part.generator.parameters():
            parameter.data.add_(0.1 * torch.randn_like(parameter))
    labels = torch.tensor([0, 3, 1, 2, 2, 4])
    terms = method.loss(module, _batch(labels, teacher))
    batch, owners, naive = _batch(labels, teacher), route(labels, 4, 2), {}
    for index, part in enumerate(module.parts):  # DMD2 on each student's rows, drawing in the same order
        owned = owned_rows(batch, owners, index)
        for name, value in DMD2(gan_generator_weight=0.0, generator_every=1).loss(part, owned).items():
            naive[name] = naive.get(name, 0.0) + len(owned["class_labels"]) / len(labels) * value
    assert set(terms) == set(naive) == {"critic", "distribution_matching"}
    for name in terms:
        assert float(terms[name].detach()) == pytest.approx(float(naive[name].detach()), rel=1e-6)
    # a batch of student 0's classes only: student 1 gets no gradient, student 0 a non-zero one
    module.zero_grad(set_to_none=True)
    sum(method.loss(module, _batch(torch.tensor([0, 1, 1, 0]), teacher)).values()).backward()
    assert sum(float(p.grad.abs().sum()) for p in module.parts[0].generator.parameters()) > 0
    assert all(p.grad is None for p in module.parts[1].parameters())


def test_an_msd_cell_saves_its_routed_students_and_is_scored_with_prompts(tmp_path):
    board = run_points(tmp_path, [{"name": "msd", "students": 2}],
                       [{"name": "points-2d", "steps": 1, "n": 32, "prompted": True}],
                       data={"prompts": 256, "null_fraction": 0.1})
    row = next(row for row in board["rows"] if row["row"] == "msd[students=2]")
    assert "points-2d/high_quality" in row["metrics"] and row["metrics"]["points-2d/nfe"]["mean"] == 1.0
    model, _ = load_point_model(next((tmp_path / "out" / "cells").glob("msd*")) / "model")
    assert isinstance(model, RoutedDenoiser) and len(model.students) == 2
