"""sft and kd losses against naive per-token loops: values and gradients."""

import math

import pytest
import torch

from distillbench.methods.llm.kd import forward_kl_loss
from distillbench.methods.llm.sft import sft_loss


def _inputs(seed=0, batch=3, length=5, vocab=7):
    generator = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, length, vocab, generator=generator, dtype=torch.float64)
    teacher = torch.randn(batch, length, vocab, generator=generator, dtype=torch.float64) * 2
    labels = torch.randint(0, vocab, (batch, length), generator=generator)
    labels[0, :2] = -100  # a prompt
    labels[2, 3:] = -100  # padding
    return student, teacher, labels


def naive_sft(logits, labels):
    total, count = 0.0, 0
    for b in range(labels.shape[0]):
        for t in range(labels.shape[1]):
            if labels[b, t] == -100:
                continue
            row = logits[b, t]
            total = total - (row[labels[b, t]] - torch.logsumexp(row, 0))
            count += 1
    return total / count


def naive_forward_kl(student, teacher, labels, temperature):
    total, count = 0.0, 0
    for b in range(labels.shape[0]):
        for t in range(labels.shape[1]):
            if labels[b, t] == -100:
                continue
            p = [math.e ** x for x in (teacher[b, t] / temperature).tolist()]
            p = [x / sum(p) for x in p]
            log_q = student[b, t] / temperature - torch.logsumexp(student[b, t] / temperature, 0)
            total = total + sum(p[v] * (math.log(p[v]) - log_q[v]) for v in range(len(p)))
            count += 1
    return temperature**2 * total / count


def test_sft_loss_matches_naive_value_and_gradient():
    student, _, labels = _inputs()
    a = student.clone().requires_grad_()
    b = student.clone().requires_grad_()
    fast, slow = sft_loss(a, labels), naive_sft(b, labels)
    fast.backward()
    slow.backward()
    assert torch.allclose(fast, slow, atol=1e-9)
    assert torch.allclose(a.grad, b.grad, atol=1e-9)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
def test_forward_kl_matches_naive_value_and_gradient(temperature):
    student, teacher, labels = _inputs(seed=1)
    a = student.clone().requires_grad_()
    b = student.clone().requires_grad_()
    fast = forward_kl_loss(a, teacher, labels, temperature)
    slow = naive_forward_kl(b, teacher, labels, temperature)
    fast.backward()
    slow.backward()
    assert torch.allclose(fast, slow, atol=1e-9)
    assert torch.allclose(a.grad, b.grad, atol=1e-9)


def test_forward_kl_is_zero_for_identical_distributions_and_positive_otherwise():
    student, teacher, labels = _inputs(seed=2)
    assert forward_kl_loss(teacher, teacher, labels).abs() < 1e-9
    assert forward_kl_loss(student, teacher, labels) > 0


def test_forward_kl_ignores_masked_positions():
    student, teacher, labels = _inputs(seed=3)
    changed = student.clone()
    changed[labels == -100] += 100.0
    assert torch.allclose(forward_kl_loss(student, teacher, labels), forward_kl_loss(changed, teacher, labels))
