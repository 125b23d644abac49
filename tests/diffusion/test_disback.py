"""DisBack (methods/diffusion/disback.py): the backtracking schedule, the degradation path against a naive loop,
the generator's loss against its current target in value and gradient, and a cell end to end."""

from types import SimpleNamespace

import pytest
import torch
from diffusers import DDPMScheduler

from tests.diffusion.conftest import run_points
from distillbench.kinds.diffusion.points import PointDenoiser
from distillbench.methods.diffusion.critic import distribution_matching_loss
from distillbench.methods.diffusion.disback import DisBack, backtracking_target

SCHEDULER = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                          clip_sample=False)


def test_the_target_walks_the_path_back_one_node_per_interval_then_stays_on_the_teacher():
    # nodes s′1..s′4 (indices 0..3): the critic starts at s′4; the targets are s′3, s′2, s′1, then the teacher
    assert [backtracking_target(step, 4, 10) for step in (0, 9, 10, 19, 20, 29, 30, 500)] == \
        [2, 2, 1, 1, 0, 0, None, None]
    assert backtracking_target(0, 1, 10) is None  # one node: the critic starts at it, the target is the teacher


def _run(teacher, batch_size=8):
    prompts = torch.tensor([0, 1, 2, 3] * 8)
    batching = SimpleNamespace(prompts=prompts, null_fraction=0.25, null_class=4, sample_shape=(2,), scheduler=SCHEDULER)
    return SimpleNamespace(frozen={"teacher": teacher}, batching=batching, seed=3, device="cpu", step=0,
                           budget=SimpleNamespace(learning_rate=1e-2, weight_decay=0.0, batch_size=batch_size))


def _naive_degradation(teacher, generator, run, iterations):
    """The degradation loop written out: AdamW on a copy of the teacher, v-target α ε − σ x on one-step samples
    x = α z − σ G(z, T−1) of the same draws; returns the copy's weights after each iteration."""
    degrading = PointDenoiser(classes=4, hidden=16, layers=1)
    degrading.load_state_dict(teacher.state_dict())
    optimizer = torch.optim.AdamW(degrading.parameters(), lr=1e-2, weight_decay=0.0)
    draws, alphas, states = torch.Generator().manual_seed(run.seed * 7_919 + 29), SCHEDULER.alphas_cumprod, []
    for _ in range(iterations):
        labels = run.batching.prompts[torch.randint(32, (8,), generator=draws)]
        labels = torch.where(torch.rand(8, generator=draws) < 0.25, torch.tensor(4), labels)
        noise = torch.randn((8, 2), generator=draws)
        a = alphas[999]
        with torch.no_grad():
            x = a.sqrt() * noise - (1 - a).sqrt() * generator(noise, torch.full((8,), 999), labels)
        t = torch.randint(1000, (8,), generator=draws)
        eps = torch.randn((8, 2), generator=draws)
        at = alphas[t].unsqueeze(1)
        target = at.sqrt() * eps - (1 - at).sqrt() * x
        prediction = degrading(at.sqrt() * x + (1 - at).sqrt() * eps, t, labels)
        optimizer.zero_grad()
        ((prediction - target) ** 2).mean().backward()
        optimizer.step()
        states.append({k: v.clone() for k, v in degrading.state_dict().items()})
    return states


def test_the_degradation_path_keeps_evenly_spaced_snapshots_of_the_teacher_fitted_to_the_initial_generator():
    torch.manual_seed(0)
    teacher = PointDenoiser(classes=4, hidden=16, layers=1).requires_grad_(False)
    method = DisBack(degradation_steps=6, path_nodes=3, gan_generator_weight=0.0)
    module = method.training_module(PointDenoiser(classes=4, hidden=16, layers=1))
    run = _run(teacher)
    run.unwrapped = module
    method.record_degradation_path(run)
    naive = _naive_degradation(teacher, module.generator, run, 6)
    for node, iteration in zip(module.path, (1, 3, 5)):  # after iterations 2, 4 and 6
        for name, value in node.state_dict().items():
            assert torch.allclose(value, naive[iteration][name], atol=1e-6), name
    assert all(torch.equal(a, b) for a, b in zip(module.critic.state_dict().values(),
                                                module.path[-1].state_dict().values()))
    assert not any(p.requires_grad for p in module.path.parameters())  # the optimiser never moves a node
    assert any(not torch.equal(a, b) for a, b in zip(module.path[0].state_dict().values(),
                                                    teacher.state_dict().values()))


def test_the_generator_follows_its_current_target_with_dmds_gradient():
    torch.manual_seed(0)
    teacher = PointDenoiser(classes=4, hidden=16, layers=1).requires_grad_(False)
    method = DisBack(degradation_steps=4, path_nodes=2, node_interval=5, gan_generator_weight=0.0, generator_every=1)
    module = method.training_module(PointDenoiser(classes=4, hidden=16, layers=1))
    for parameter in module.path[0].parameters():  # a node unlike the teacher
        parameter.add_(0.1 * torch.randn_like(parameter))
    batch = {"class_labels": torch.tensor([0, 1, 4, 4]), "noise": torch.randn(4, 2), "clean": torch.randn(4, 2),
             "scheduler": SCHEDULER, "teacher": teacher}
    for step, target in ((0, module.path[0]), (5, teacher)):
        assert method.real_score_model(module, {**batch, "step": step}) is target
        sample = torch.randn(4, 2, requires_grad=True)
        loss = method.generator_loss(module.critic, target, SCHEDULER, sample, batch["class_labels"],
                                     torch.Generator().manual_seed(1))
        # the naive form: the same re-noising draws, x̂₀ = α x_t − σ v of the critic and of the target
        draws = torch.Generator().manual_seed(1)
        t = torch.randint(20, 980, (4,), generator=draws)
        eps = torch.randn((4, 2), generator=draws)
        a = SCHEDULER.alphas_cumprod[t].unsqueeze(1)
        noisy = a.sqrt() * sample.detach() + (1 - a).sqrt() * eps
        with torch.no_grad():
            fake = a.sqrt() * noisy - (1 - a).sqrt() * module.critic(noisy, t, batch["class_labels"])
            real = a.sqrt() * noisy - (1 - a).sqrt() * target(noisy, t, batch["class_labels"])
        assert float(loss.detach()) == pytest.approx(float(distribution_matching_loss(sample, real, fake).detach()),
                                                     rel=1e-5)
        (gradient,) = torch.autograd.grad(loss, sample)
        normaliser = (sample.detach() - real).abs().mean(dim=1, keepdim=True)
        assert torch.allclose(gradient, (fake - real) / normaliser / 8, atol=1e-6)
    terms = method.loss(module, {**batch, "step": 1, "generator": torch.Generator().manual_seed(2)})
    terms["distribution_matching"].backward()
    assert sum(float(p.grad.abs().sum()) for p in module.generator.parameters()) > 0  # the DistillationDPO caution
    assert DisBack(degradation_steps=10, path_nodes=3).check() == [
        "path_nodes: must divide degradation_steps (the nodes are evenly spaced)"]


def test_a_disback_cell_records_its_path_and_trains(tmp_path, capsys):
    board = run_points(tmp_path, [{"name": "disback", "degradation_steps": 4, "path_nodes": 2, "node_interval": 2}],
                       [{"name": "points-2d", "steps": 1, "n": 32}])
    (row,) = [row for row in board["rows"] if row["row"].startswith("disback")]
    # DMD2's (the real score on generator steps 0; GAN features every step) plus the degradation's 4 × 16
    assert row["cost"]["teacher_forwards"] == 16 * (1 + 3) + 3 * 16 * 2 + 4 * 16
    assert "points-2d/high_quality" in row["metrics"]
