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
