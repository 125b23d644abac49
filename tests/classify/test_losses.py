"""Classify losses against naive per-example loops (values and gradients), and against the papers' identities."""

import math

import pytest
import torch
from torch.nn import functional as F

from distillbench.methods.classify.common import cross_entropy_loss, soft_kl_loss
from distillbench.methods.classify.dhkd import (DHKD, DualHeadStudent, binary_kl_norm_loss, gradient_aligned,
                                                project_conflicting)
from distillbench.methods.classify.dkd import DKD, dkd_terms
from distillbench.methods.classify.pld import pld_loss


def _inputs(seed=0, batch=5, classes=7):
    generator = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, classes, generator=generator, dtype=torch.float64) * 2
    teacher = torch.randn(batch, classes, generator=generator, dtype=torch.float64) * 3
    labels = torch.randint(0, classes, (batch,), generator=generator)
    return student, teacher, labels


def _log_softmax(row):
    return [x - math.log(sum(math.exp(v) for v in row)) for x in row]


def _check(fast_fn, slow_fn, student, atol=1e-9):
    a, b = student.clone().requires_grad_(), student.clone().requires_grad_()
    fast, slow = fast_fn(a), slow_fn(b)
    fast.backward()
    slow.backward()
    assert torch.allclose(fast, slow, atol=atol), (fast, slow)
    assert torch.allclose(a.grad, b.grad, atol=atol)


def naive_kl(student, teacher, temperature):
    total = 0.0
    for s_row, t_row in zip(student, teacher):
        log_q = torch.log_softmax(s_row / temperature, 0)
        log_p = _log_softmax((t_row / temperature).tolist())
        total = total + sum(math.exp(log_p[c]) * (log_p[c] - log_q[c]) for c in range(len(log_p)))
    return temperature**2 * total / len(student)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_soft_kl_matches_naive(temperature):
    student, teacher, _ = _inputs()
    _check(lambda s: soft_kl_loss(s, teacher, temperature), lambda s: naive_kl(s, teacher, temperature), student)


def test_cross_entropy_matches_naive():
    student, _, labels = _inputs(1)
    naive = lambda s: sum(torch.logsumexp(row, 0) - row[y] for row, y in zip(s, labels)) / len(labels)
    _check(lambda s: cross_entropy_loss(s, labels), naive, student)


# --- DKD ---------------------------------------------------------------------------------
def naive_dkd(student, teacher, labels, temperature):
    """TCKD and NCKD from their definitions: binary (target, rest) distributions and the softmax over the
    non-target classes only (the target left out, not masked)."""
    tckd = nckd = 0.0
    for s_row, t_row, y in zip(student / temperature, teacher / temperature, labels.tolist()):
        p_s, p_t = torch.softmax(s_row, 0), torch.softmax(t_row, 0)
        b_s, b_t = [p_s[y], 1 - p_s[y]], [p_t[y].item(), 1 - p_t[y].item()]
        tckd = tckd + sum(bt * (math.log(bt) - torch.log(bs)) for bt, bs in zip(b_t, b_s))
        rest = [c for c in range(len(s_row)) if c != y]
        q_s = torch.log_softmax(s_row[rest], 0)
        q_t = _log_softmax(t_row[rest].tolist())
        nckd = nckd + sum(math.exp(q_t[i]) * (q_t[i] - q_s[i]) for i in range(len(rest)))
    return temperature**2 * tckd / len(labels), temperature**2 * nckd / len(labels)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
@pytest.mark.parametrize("part", [0, 1])
def test_dkd_terms_match_naive(temperature, part):
    student, teacher, labels = _inputs(2)
    _check(lambda s: dkd_terms(s, teacher, labels, temperature)[part],
           lambda s: naive_dkd(s, teacher, labels, temperature)[part], student)


def test_dkd_decomposes_kd():
    """The DKD paper's Eq. (1): KD = TCKD + (1 − p_t) · NCKD per example, p_t the teacher's target probability."""
    student, teacher, labels = _inputs(3, batch=1)
    tckd, nckd = dkd_terms(student, teacher, labels, 1.0)
    p_target = torch.softmax(teacher, 1)[0, labels[0]]
    assert torch.allclose(soft_kl_loss(student, teacher, 1.0), tckd + (1 - p_target) * nckd, atol=1e-10)


def test_dkd_warmup_follows_epochs():
    student, teacher, labels = _inputs(4)
    model = lambda images: student
    method = DKD()
    early = method.loss(model, {"images": None, "labels": labels, "teacher_logits": teacher, "epoch": 1})
    late = method.loss(model, {"images": None, "labels": labels, "teacher_logits": teacher, "epoch": 40})
    assert torch.allclose(early["nckd"] * 20, late["nckd"]) and torch.allclose(early["tckd"] * 20, late["tckd"])
    assert torch.allclose(early["ce"], late["ce"])
    tckd, nckd = dkd_terms(student, teacher, labels, 4.0)
    assert torch.allclose(late["nckd"], 8 * nckd) and torch.allclose(late["tckd"], tckd)


# --- PLD ---------------------------------------------------------------------------------
def naive_pld(student, teacher, labels, temperature):
    total = 0.0
    for s_row, t_row, y in zip(student, teacher, labels.tolist()):
        order = [y] + sorted((c for c in range(len(t_row)) if c != y), key=lambda c: -t_row[c].item())
        weights = torch.softmax(t_row / temperature, 0)
        for k, chosen in enumerate(order):
            tail = torch.stack([s_row[c] for c in order[k:]])
            total = total + weights[chosen] * (torch.logsumexp(tail, 0) - s_row[chosen])
    return total / len(labels)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_pld_matches_naive(temperature):
    student, teacher, labels = _inputs(5)
    _check(lambda s: pld_loss(s, teacher, labels, temperature), lambda s: naive_pld(s, teacher, labels, temperature),
           student)


def test_pld_is_translation_invariant_and_subsumes_cross_entropy():
    student, teacher, labels = _inputs(6)
    assert torch.allclose(pld_loss(student + 3.0, teacher, labels), pld_loss(student, teacher, labels))
    # A teacher certain of the label puts all weight on the first step: CE.
    certain = F.one_hot(labels, student.shape[1]).double() * 1e4
    assert torch.allclose(pld_loss(student, certain, labels, 1.0), cross_entropy_loss(student, labels), atol=1e-9)


# --- DHKD --------------------------------------------------------------------------------
def naive_binary_kl(student, teacher, temperature, eps=1e-8):
    """The authors' BinaryKLNorm, written with KLDivLoss(reduction='none') as theirs."""
    criterion = torch.nn.KLDivLoss(reduction="none")
    difference = torch.sigmoid((student - teacher) / temperature).clamp(min=eps, max=1 - eps)
    target = torch.full_like(difference, 0.5)
    loss = criterion(torch.log(difference), target) + criterion(torch.log(1 - difference), 1 - target)
    return temperature**2 * loss.sum() / len(student)


def naive_binary_kl_loop(student, teacher, temperature):
    total = 0.0
    for s_row, t_row in zip(student, teacher):
        for s, t in zip(s_row, t_row):
            d = torch.sigmoid((s - t) / temperature)
            total = total + 0.5 * (math.log(0.5) - torch.log(d)) + 0.5 * (math.log(0.5) - torch.log(1 - d))
    return temperature**2 * total / len(student)


@pytest.mark.parametrize("reference", [naive_binary_kl, naive_binary_kl_loop])
def test_binary_kl_norm_matches_the_authors_and_a_loop(reference):
    student, teacher, _ = _inputs(7)
    _check(lambda s: binary_kl_norm_loss(s, teacher, 2.0), lambda s: reference(s, teacher, 2.0), student)


def test_binary_kl_is_zero_at_the_teacher():
    _, teacher, _ = _inputs(8)
    assert binary_kl_norm_loss(teacher, teacher, 2.0).abs() < 1e-12


def naive_pcgrad(ce_grad, kd_grad):
    """The authors' OptimGradAlign._project_conflicting for [ce, kd], element by element."""
    projected = []
    for g in (ce_grad, kd_grad):
        g = g.clone()
        dot = sum(float(a) * float(b) for a, b in zip(g, ce_grad))
        if dot < 0:
            g = g - dot * ce_grad / sum(float(x) ** 2 for x in ce_grad)
        projected.append(g)
    return projected[0] + projected[1]


@pytest.mark.parametrize("seed", range(4))
def test_gradient_alignment_gives_the_authors_update_and_keeps_the_values(seed):
    torch.manual_seed(seed)
    trunk, head, auxiliary = torch.nn.Linear(6, 5).double(), torch.nn.Linear(5, 4).double(), torch.nn.Linear(5, 4).double()
    params = [*trunk.parameters(), *head.parameters(), *auxiliary.parameters()]
    images, labels, teacher = torch.randn(8, 6).double(), torch.randint(0, 4, (8,)), torch.randn(8, 4).double() * 3

    def terms():
        features = torch.tanh(trunk(images))
        return {"ce": cross_entropy_loss(head(features), labels),
                "binary_kl": binary_kl_norm_loss(auxiliary(features), teacher, 2.0)}

    plain = terms()
    flat = []
    for name in ("ce", "binary_kl"):
        grads = torch.autograd.grad(plain[name], params, retain_graph=True, allow_unused=True)
        flat.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                               for g, p in zip(grads, params)]))
    expected = naive_pcgrad(*flat)
    aligned = gradient_aligned(terms(), params, primary="ce")
    assert all(torch.allclose(aligned[k], plain[k]) for k in plain)
    sum(aligned.values()).backward()
    assert torch.allclose(torch.cat([p.grad.reshape(-1) for p in params]), expected, atol=1e-10)


def test_projection_only_when_conflicting():
    primary = torch.tensor([1.0, 0.0])
    assert torch.equal(project_conflicting(torch.tensor([1.0, 1.0]), primary), torch.tensor([1.0, 1.0]))
    assert torch.allclose(project_conflicting(torch.tensor([-1.0, 1.0]), primary), torch.tensor([0.0, 1.0]))


def test_dhkd_trains_an_auxiliary_head_and_returns_the_student():
    from distillbench.kinds.image_classifier.classifiers import initialised

    student = initialised("shapes-cnn-small", 3, seed=0)
    method = DHKD()
    module = method.training_module(student)
    assert isinstance(module, DualHeadStudent) and method.trained_model(module) is student
    batch = {"images": torch.randn(4, 3, 32, 32), "labels": torch.tensor([0, 1, 2, 0]),
             "teacher_logits": torch.randn(4, 3), "epoch": 1}
    terms = method.loss(module, batch)
    assert set(terms) == {"ce", "binary_kl"}
    sum(terms.values()).backward()
    assert module.auxiliary[0].weight.grad is not None and student.network.fc.weight.grad is not None
