"""DCKD, ADPA, REDI losses against naive per-token loops (values and gradients), and the
harness features they rely on: per-sequence teacher signals, samples beside preference
pairs, the teacher as DPO reference, and methods that continue another method's student."""

import pytest
import torch

from distillbench.methods.llm.adpa import advantage_loss
from distillbench.methods.llm.dckd import topk_forward_kl
from distillbench.methods.llm.kd import forward_kl_loss
from distillbench.methods.llm.redi import redi_loss


def _inputs(seed=0, batch=3, length=5, vocab=7):
    generator = torch.Generator().manual_seed(seed)
    student = (torch.randn(batch, length, vocab, generator=generator, dtype=torch.float64) * 2).requires_grad_()
    teacher = torch.randn(batch, length, vocab, generator=generator, dtype=torch.float64) * 2
    reference = torch.randn(batch, length, vocab, generator=generator, dtype=torch.float64) * 2
    labels = torch.randint(0, vocab, (batch, length), generator=generator)
    labels[0, :2] = -100
    labels[2, -1] = -100
    return student, teacher, reference, labels


def naive_topk_kl(student, teacher, labels, k):
    total, count = 0.0, 0
    for b in range(labels.shape[0]):
        for t in range(labels.shape[1]):
            if labels[b, t] == -100:
                continue
            p, q = torch.softmax(teacher[b, t], -1), torch.softmax(student[b, t], -1)
            order = sorted(range(len(p)), key=lambda v: -p[v].item())[:k]
            p_bins = [p[v] for v in order] + [1 - sum(p[v] for v in order)]
            q_bins = [q[v] for v in order] + [1 - sum(q[v] for v in order)]
            total = total + sum(pi * torch.log(pi / qi) for pi, qi in zip(p_bins, q_bins) if pi > 0)
            count += 1
    return total / count


@pytest.mark.parametrize("k", [1, 3, 6])
def test_topk_forward_kl_matches_naive(k):
    student, teacher, _, labels = _inputs()
    fast = topk_forward_kl(student, teacher, labels, k)
    (grad_fast,) = torch.autograd.grad(fast, student)
    slow = naive_topk_kl(student, teacher, labels, k)
    (grad_slow,) = torch.autograd.grad(slow, student)
    assert torch.allclose(fast, slow) and torch.allclose(grad_fast, grad_slow)


def test_topk_kl_over_the_whole_vocabulary_is_the_forward_kl():
    student, teacher, _, labels = _inputs(seed=1)
    assert torch.allclose(topk_forward_kl(student, teacher, labels, top_k=50), forward_kl_loss(student, teacher, labels))


def naive_advantage(student, teacher, reference, labels, k, clamp):
    total, count = 0.0, 0
    for b in range(labels.shape[0]):
        for t in range(labels.shape[1]):
            if labels[b, t] == -100:
                continue
            log_t, log_r = torch.log_softmax(teacher[b, t], -1), torch.log_softmax(reference[b, t], -1)
            p_s = torch.softmax(student[b, t], -1)
            for v in sorted(range(len(log_t)), key=lambda v: -log_t[v].item())[:k]:
                advantage = log_t[v] - log_r[v]
                if clamp:
                    advantage = advantage.clamp(1e-8, 1 - 1e-8)
                total = total - p_s[v] * advantage
            count += 1
    return total / count


@pytest.mark.parametrize("k, clamp", [(2, False), (7, False), (3, True)])
def test_advantage_loss_matches_naive(k, clamp):
    student, teacher, reference, labels = _inputs(seed=2)
    fast = advantage_loss(student, teacher, reference, labels, k, clamp)
    (grad_fast,) = torch.autograd.grad(fast, student)
    slow = naive_advantage(student, teacher, reference, labels, k, clamp)
    (grad_slow,) = torch.autograd.grad(slow, student)
    assert torch.allclose(fast, slow) and torch.allclose(grad_fast, grad_slow)


def test_advantage_is_zero_when_the_teacher_equals_its_reference():
    student, teacher, _, labels = _inputs(seed=3)
    assert advantage_loss(student, teacher, teacher.clone(), labels).abs().item() < 1e-12


def test_redi_loss_matches_naive_and_is_asymmetric():
    chosen = torch.tensor([-0.5, -1.5, -0.2], dtype=torch.float64, requires_grad=True)
    rejected = torch.tensor([-0.7, -0.4, -2.0], dtype=torch.float64, requires_grad=True)
    loss = redi_loss(chosen, rejected, 1.0, 0.8)
    naive = sum(-1.0 * c + 0.8 * r for c, r in zip(chosen, rejected)) / 3
    assert torch.allclose(loss, naive)
    loss.backward()
    assert torch.allclose(chosen.grad, torch.full((3,), -1 / 3, dtype=torch.float64))
    assert torch.allclose(rejected.grad, torch.full((3,), 0.8 / 3, dtype=torch.float64))


def naive_skew(student, teacher, labels, alpha, reverse):
    total, count = 0.0, 0
    for b in range(labels.shape[0]):
        for t in range(labels.shape[1]):
            if labels[b, t] == -100:
                continue
            p, q = torch.softmax(teacher[b, t], -1), torch.softmax(student[b, t], -1)
            if reverse:
                p, q = q, p  # KL(p_S ‖ α p_S + (1−α) p_T)
            mixture = alpha * p + (1 - alpha) * q
            total = total + sum(p[v] * torch.log(p[v] / mixture[v]) for v in range(len(p)))
            count += 1
    return total / count


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.9])
@pytest.mark.parametrize("reverse", [False, True])
def test_skew_kl_matches_naive(alpha, reverse):
    from distillbench.methods.llm.distillm import skew_forward_kl, skew_reverse_kl

    student, teacher, _, labels = _inputs(seed=4)
    fast = (skew_reverse_kl if reverse else skew_forward_kl)(student, teacher, labels, alpha)
    (grad_fast,) = torch.autograd.grad(fast, student)
    slow = naive_skew(student, teacher, labels, alpha, reverse)
    (grad_slow,) = torch.autograd.grad(slow, student)
    assert torch.allclose(fast, slow) and torch.allclose(grad_fast, grad_slow)


def test_skew_kl_at_alpha_zero_is_the_plain_kl():
    from distillbench.methods.llm.distillm import skew_forward_kl, skew_reverse_kl
    from distillbench.methods.llm.rkl import reverse_kl_loss

    student, teacher, _, labels = _inputs(seed=5)
    assert torch.allclose(skew_forward_kl(student, teacher, labels, 0.0), forward_kl_loss(student, teacher, labels))
    assert torch.allclose(skew_reverse_kl(student, teacher, labels, 0.0), reverse_kl_loss(student, teacher, labels))


def test_adaptive_schedule_rises_only_when_validation_loss_rises_by_eps():
    from distillbench.harness.onpolicy import AdaptiveOffPolicy

    schedule = AdaptiveOffPolicy(initial=0.0, loss_eps=0.1)
    assert [schedule.choose(0, step, 100) for step in range(20)] == ["data"] * 20
    for loss in (2.0, 1.5, 2.05, 2.1):  # the first sets the baseline; 2.05 < 2.0 + 0.1
        schedule.observe(loss)
    assert schedule.probability == pytest.approx(0.1) and schedule.previous_loss == 2.1
    schedule.observe(2.15)
    assert schedule.probability == pytest.approx(0.1)  # measured against the last rise, 2.1
    for _ in range(20):
        schedule.observe(schedule.previous_loss + 1)
    assert schedule.probability == 1.0


def test_adaptive_schedule_fills_the_buffer_first_then_replays():
    from distillbench.harness.onpolicy import AdaptiveOffPolicy

    schedule = AdaptiveOffPolicy(initial=1.0, capacity=4)
    assert schedule.choose(0, 99, 100) == "fresh"  # buffer not full: always fresh while p = 1
    batch = {"input_ids": torch.tensor([[5, 6, 7, 0], [5, 8, 0, 0]]), "labels": torch.tensor([[-100, 6, 7, -100],
                                                                                               [-100, 8, -100, -100]]),
             "attention_mask": torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])}
    for _ in range(3):
        schedule.remember(batch)
    assert len(schedule.buffer) == 4 and schedule.buffer[-1] == {"input_ids": [5, 8], "labels": [-100, 8]}
    # Late in training with a full buffer, the decreasing share makes most p=1 steps replays.
    choices = [schedule.choose(seed, 99, 100) for seed in range(50)]
    assert choices.count("replay") > 40 and "data" not in choices
    restored = AdaptiveOffPolicy()
    restored.load_state_dict(schedule.state_dict())
    assert restored.replay(0, 3, 2) == schedule.replay(0, 3, 2)
