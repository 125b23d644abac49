"""rkl, tvd and gkd losses against naive loops (values and gradients), GKD against TRL, continuity at the ends."""

import math

import pytest
import torch

from distillbench.methods.llm.gkd import generalized_jsd_loss
from distillbench.methods.llm.kd import forward_kl_loss
from distillbench.methods.llm.rkl import reverse_kl_loss
from distillbench.methods.llm.tvd import tvd_loss


def _inputs(seed=0, batch=2, length=4, vocab=6):
    generator = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, length, vocab, generator=generator, dtype=torch.float64)
    teacher = torch.randn(batch, length, vocab, generator=generator, dtype=torch.float64) * 2
    labels = torch.randint(0, vocab, (batch, length), generator=generator)
    labels[0, 0] = -100
    return student, teacher, labels


def _softmax(row, temperature):
    exps = [math.exp(x / temperature) for x in row]
    return [e / sum(exps) for e in exps]


def naive(per_token_fn, student, teacher, labels, temperature):
    """Mean over unmasked positions of per_token_fn(p_teacher, log p_student row as a tensor)."""
    total, count = 0.0, 0
    for b in range(labels.shape[0]):
        for t in range(labels.shape[1]):
            if labels[b, t] == -100:
                continue
            q = torch.softmax(student[b, t] / temperature, 0)
            p = _softmax(teacher[b, t].tolist(), temperature)
            total = total + per_token_fn(p, q)
            count += 1
    return total / count


def naive_rkl(p, q):
    return sum(q[v] * (torch.log(q[v]) - math.log(p[v])) for v in range(len(p)))


def naive_tvd(p, q):
    return 0.5 * sum(abs(p[v] - q[v]) for v in range(len(p)))


def naive_jsd(beta):
    def jsd(p, q):
        m = [beta * p[v] + (1 - beta) * q[v] for v in range(len(p))]
        kl_p = sum(p[v] * (math.log(p[v]) - torch.log(m[v])) for v in range(len(p)))
        kl_q = sum(q[v] * (torch.log(q[v]) - torch.log(m[v])) for v in range(len(p)))
        return (beta * kl_p + (1 - beta) * kl_q) / (beta * (1 - beta))

    return jsd


def _check(fast_fn, per_token_fn, temperature=1.0, scale=1.0, seed=0):
    student, teacher, labels = _inputs(seed)
    a, b = student.clone().requires_grad_(), student.clone().requires_grad_()
    fast = fast_fn(a, teacher, labels)
    slow = scale * naive(per_token_fn, b, teacher, labels, temperature)
    fast.backward()
    slow.backward()
    assert torch.allclose(fast, slow, atol=1e-9)
    assert torch.allclose(a.grad, b.grad, atol=1e-9)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_reverse_kl(temperature):
    _check(lambda s, t, l: reverse_kl_loss(s, t, l, temperature), naive_rkl, temperature, temperature**2)


def test_tvd():
    _check(tvd_loss, naive_tvd)


@pytest.mark.parametrize("beta", [0.1, 0.5, 0.9])
def test_generalized_jsd_interior(beta):
    _check(lambda s, t, l: generalized_jsd_loss(s, t, l, beta, 0.9), naive_jsd(beta), 0.9, seed=3)


def test_generalized_jsd_endpoints_are_exact_and_continuous():
    student, teacher, labels = _inputs(5)
    fkl, rkl = forward_kl_loss(student, teacher, labels), reverse_kl_loss(student, teacher, labels)
    assert torch.equal(generalized_jsd_loss(student, teacher, labels, 0.0), fkl)
    assert torch.equal(generalized_jsd_loss(student, teacher, labels, 1.0), rkl)
    assert torch.allclose(generalized_jsd_loss(student, teacher, labels, 1e-6), fkl, rtol=1e-4)
    assert torch.allclose(generalized_jsd_loss(student, teacher, labels, 1 - 1e-6), rkl, rtol=1e-4)


@pytest.mark.parametrize("beta", [0.0, 0.3, 0.5, 1.0])
def test_generalized_jsd_matches_trl(beta):
    trl_gkd = pytest.importorskip("trl.experimental.gkd.gkd_trainer")
    student, teacher, labels = _inputs(7)
    ours = generalized_jsd_loss(student, teacher, labels, beta, temperature=0.9)
    theirs = trl_gkd.GKDTrainer.generalized_jsd_loss(student, teacher, labels, beta=beta, temperature=0.9,
                                                     reduction="batchmean")
    # TRL averages over response tokens too ("batchmean" over the masked positions)
    scale = beta * (1 - beta) if 0 < beta < 1 else 1.0
    assert torch.allclose(ours * scale, theirs, atol=1e-9)
