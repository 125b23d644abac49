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


def _response_positions(labels):
    """(row, position) of every token a loss applies to."""
    return [(b, t) for b in range(labels.shape[0]) for t in range(labels.shape[1]) if labels[b, t] != -100]


def naive_topk_kl(student, teacher, labels, k):
    total, count = 0.0, 0
    for b, t in _response_positions(labels):
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
    for b, t in _response_positions(labels):
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
    for b, t in _response_positions(labels):
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
    from distillbench.kinds.text_lm.onpolicy import AdaptiveOffPolicy

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
    from distillbench.kinds.text_lm.onpolicy import AdaptiveOffPolicy

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


def test_curry_dpo_loss_averages_only_untied_pairs():
    from distillbench.methods.llm.curry_dpo import curry_dpo_loss
    from tests.conftest import assert_same_value_and_gradients, leaf_copies

    pc, pr, rc, rr = (torch.tensor(v, dtype=torch.float64) for v in ([-1.0, -2.0, -3.0], [-2.0, -1.0, -4.0],
                                                                         [-1.5, -2.0, -3.0], [-1.0, -1.0, -3.5]))
    valid = torch.tensor([True, False, True])
    (a, c), (b, d) = leaf_copies(pc, pr), leaf_copies(pc, pr)
    naive = sum(-torch.log(torch.sigmoid(0.5 * ((b[i] - rc[i]) - (d[i] - rr[i])))) for i in (0, 2)) / 2
    assert_same_value_and_gradients(curry_dpo_loss(a, c, rc, rr, valid, 0.5), naive, (a, c), (b, d))
    none = pc.clone().requires_grad_()
    loss = curry_dpo_loss(none, pr, rc, rr, torch.zeros(3, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0 and torch.equal(none.grad, torch.zeros(3, dtype=torch.float64))


def naive_adpo(policy, anchor, scores, tau, beta_reward):
    total = 0.0
    for b in range(policy.shape[0]):
        k = policy.shape[1]
        mean = sum(scores[b]) / k
        std = (sum((s - mean) ** 2 for s in scores[b]) / (k - 1)) ** 0.5  # the sample std, as the TRL port
        z = [(s - mean) / (std + 1e-4) for s in scores[b]]
        q = torch.softmax(torch.tensor(z, dtype=torch.float64) / beta_reward, -1)
        u = [(policy[b, i] - anchor[b, i]) / tau for i in range(k)]
        log_norm = torch.logsumexp(torch.stack(u), 0)
        total = total - sum(q[i] * (u[i] - log_norm) for i in range(k))
    return total / policy.shape[0]


@pytest.mark.parametrize("tau, beta_reward", [(1.0, 0.5), (0.3, 2.0)])
def test_adpo_loss_matches_naive(tau, beta_reward):
    from distillbench.methods.llm.adpo import adpo_loss

    generator = torch.Generator().manual_seed(6)
    policy = (torch.randn(3, 4, generator=generator, dtype=torch.float64) * 3).requires_grad_()
    anchor = torch.randn(3, 4, generator=generator, dtype=torch.float64) * 3
    scores = torch.tensor([[10, 8, 4, 4], [6, 6, 6, 6], [9, 1, 5, 7]], dtype=torch.float64)
    fast = adpo_loss(policy, anchor, scores, tau, beta_reward)
    (grad_fast,) = torch.autograd.grad(fast, policy)
    slow = naive_adpo(policy, anchor, scores, tau, beta_reward)
    (grad_slow,) = torch.autograd.grad(slow, policy)
    assert torch.allclose(fast, slow) and torch.allclose(grad_fast, grad_slow)


def test_adpo_pushes_probability_toward_higher_scores():
    from distillbench.methods.llm.adpo import adpo_loss

    policy = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    adpo_loss(policy, torch.zeros(1, 3, dtype=torch.float64), torch.tensor([[9.0, 5.0, 1.0]])).backward()
    assert policy.grad[0, 0] < 0 < policy.grad[0, 2]  # gradient descent raises the best, lowers the worst


def test_curry_dpo_renews_its_reference_at_each_iteration_start():
    from distillbench.methods.llm.curry_dpo import CurryDPO

    reference, student = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    renewed = []
    for done in range(1, 7):
        with torch.no_grad():
            student.weight.fill_(done)
        CurryDPO(iterations=3).update_reference(reference, student, done, total_steps=6)
        renewed.append(reference.weight[0, 0].item())
    assert renewed[1] == 2 and renewed[3] == 4 and renewed[5] == 4  # copied after steps 2 and 4 only


def test_adpo_ema_anchor_moves_a_small_step_toward_the_student():
    from distillbench.methods.llm.adpo import ADPO

    reference, student = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    with torch.no_grad():
        reference.weight.fill_(0.0)
        student.weight.fill_(1.0)
    method = ADPO(anchor="ema", ema_alpha=0.9)
    assert method.updates_reference and not ADPO().updates_reference
    method.update_reference(reference, student, 1, 10)
    assert torch.allclose(reference.weight, torch.full((2, 2), 0.1))


def _adpo_step(method, policy_logps, anchor_logps, monkeypatch):
    """One ADPO loss call on a single two-response list whose log-probs are given; its loss terms."""
    from distillbench.methods.llm import adpo

    monkeypatch.setattr(adpo, "sequence_logps", lambda student, batch, side: batch[f"policy_{side}"])
    batch = {"scores": torch.tensor([[1.0, 0.0]])}
    for i in range(2):
        batch.update({f"rank{i}_input_ids": None, f"policy_rank{i}": policy_logps[:, i],
                      f"reference_rank{i}_logps": anchor_logps[:, i]})
    return method.loss(None, batch)


def test_adpo_on_policy_anchor_is_the_detached_policy(monkeypatch):
    """With the policy as its own (stop-gradient) anchor the loss is log K, and its gradient pulls each
    response's log-prob by (1/K − q_i)/τ: toward the score distribution, from a uniform start."""
    import math

    from distillbench.methods.llm.adpo import ADPO

    policy = torch.tensor([[-3.0, -1.0]], requires_grad=True)
    method = ADPO(anchor="on_policy", tau=0.5, beta_reward=1.0)
    loss = _adpo_step(method, policy, torch.full((1, 2), 99.0), monkeypatch)["adpo"]  # the stored anchor is ignored
    q = torch.softmax(torch.tensor([0.5, -0.5]) / (0.5 ** 0.5 + 1e-4), dim=0)  # z-scores of [1, 0] (sample std)
    (gradient,) = torch.autograd.grad(loss, policy)
    assert math.isclose(loss.item(), math.log(2), rel_tol=1e-6)
    assert torch.allclose(gradient[0], (0.5 - q) / 0.5, atol=1e-6)


def test_adpo_kl_triggered_copies_the_student_once_the_window_mean_passes_the_threshold(monkeypatch):
    from distillbench.methods.llm.adpo import ADPO

    reference, student = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    with torch.no_grad():
        reference.weight.fill_(0.0)
        student.weight.fill_(1.0)
    method = ADPO(anchor="kl_triggered", kl_threshold=0.1, kl_window=3)
    assert method.updates_reference
    anchor = torch.zeros(1, 2)
    for step, divergence in enumerate([0.05, 0.2, 0.2], start=1):  # window mean 0.15 only when full
        _adpo_step(method, torch.full((1, 2), divergence), anchor, monkeypatch)
        method.update_reference(reference, student, step, 10)
        copied = bool((reference.weight == 1.0).all())
        assert copied == (step == 3), step
    assert method.state_dict() == {"window": [], "anchor_updates": 1}
    # A window whose mean stays under the threshold never triggers.
    with torch.no_grad():
        reference.weight.fill_(0.0)
    for step in range(4, 10):
        _adpo_step(method, torch.full((1, 2), 0.09), anchor, monkeypatch)
        method.update_reference(reference, student, step, 10)
    assert bool((reference.weight == 0.0).all()) and len(method.state_dict()["window"]) == 3


def test_adpo_kl_window_survives_a_checkpoint_round_trip(monkeypatch):
    import json

    from distillbench.methods.llm.adpo import ADPO

    method = ADPO(anchor="kl_triggered", kl_window=4)
    reference, student = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    for step, divergence in enumerate([0.3, 0.01], start=1):
        _adpo_step(method, torch.full((1, 2), divergence), torch.zeros(1, 2), monkeypatch)
        method.update_reference(reference, student, step, 10)
    saved = json.loads(json.dumps(method.state_dict()))  # the checkpoint manifest is JSON
    resumed = ADPO(anchor="kl_triggered", kl_window=4)
    resumed.load_state_dict(saved)
    assert resumed.state_dict() == method.state_dict() and len(saved["window"]) == 2
    assert ADPO(anchor="fixed").state_dict() == {}  # only the stateful mode checkpoints anything


def test_adpo_target_is_the_trl_ports_z_score():
    # wk222/TRL-ADPO: (r − mean) / (sample std + 1e-4), then softmax(· / β_r); for [10, 8, 4, 4] the std is 3
    # and q = softmax([7/3, 1, −5/3, −5/3]) = [.769, .203, .014, .014] (the population std gave [.810, …])
    from distillbench.methods.llm.adpo import adpo_loss

    policy = torch.zeros(1, 4, dtype=torch.float64, requires_grad=True)
    loss = adpo_loss(policy, torch.zeros(1, 4, dtype=torch.float64), torch.tensor([[10.0, 8.0, 4.0, 4.0]],
                     dtype=torch.float64), tau=1.0, beta_reward=0.5)
    (gradient,) = torch.autograd.grad(loss, policy)  # (softmax(0) − q) / τ
    q = 0.25 - gradient[0]
    expected = torch.softmax(torch.tensor([7 / 3, 1, -5 / 3, -5 / 3], dtype=torch.float64) * 3 / (3 + 1e-4), 0)
    assert torch.allclose(q, expected, atol=1e-9) and [round(v, 3) for v in q.tolist()] == [0.769, 0.203, 0.014, 0.014]


class _TokenLogits(torch.nn.Module):
    """A language 'model' whose next-token logits depend only on the current token (a lookup table)."""

    def __init__(self, vocab, seed):
        super().__init__()
        self.table = torch.nn.Embedding(vocab, vocab)
        torch.nn.init.normal_(self.table.weight, generator=torch.Generator().manual_seed(seed))

    def forward(self, input_ids, attention_mask):
        return type("Out", (), {"logits": self.table(input_ids)})()


def test_teacher_hackings_distances_match_a_loop_over_tokens():
    """Golden distance: the mean NLL of the oracle's tokens; proxy: the mean KL(teacher ‖ student), both over
    every response token of the held-out set, across batches of 64 and sequences of different lengths."""
    from distillbench.methods.llm.teacher_hacking import TeacherHacking

    generator = torch.Generator().manual_seed(5)
    examples = []
    for index in range(70):
        length, prompt = 3 + index % 4, 1 + index % 2
        ids = torch.randint(1, 7, (length,), generator=generator).tolist()
        examples.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    student, teacher = _TokenLogits(7, 0), _TokenLogits(7, 1)
    measured = TeacherHacking().measure(student, {"teacher": teacher}, examples, pad_id=0)
    nll = kl = count = 0.0
    for example in examples:
        for t in range(len(example["input_ids"]) - 1):
            if example["labels"][t + 1] == -100:
                continue
            s = torch.log_softmax(student.table.weight[example["input_ids"][t]].detach(), dim=0)
            q = torch.log_softmax(teacher.table.weight[example["input_ids"][t]].detach(), dim=0)
            nll, kl, count = nll - s[example["labels"][t + 1]].item(), kl + (q.exp() * (q - s)).sum().item(), count + 1
    assert measured["golden_distance"] == pytest.approx(nll / count, rel=1e-5)
    assert measured["proxy_distance"] == pytest.approx(kl / count, rel=1e-5)
