"""Chunked fused-linear losses against the naive losses on full logits: values and gradients
(hidden states, weight, bias) for every divergence, teacher as logits or as hidden states +
LM head, several chunk sizes; the log-prob gathering; and, structurally, that no
[tokens × vocab] tensor is saved for backward or created at all."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from distillbench.kinds.text_lm.chunked import TeacherHead, chunked_divergence_loss, chunked_token_logps, chunked_values
from distillbench.methods.llm import chunked
from distillbench.methods.llm.distillm import skew_forward_kl, skew_reverse_kl
from distillbench.methods.llm.gkd import generalized_jsd_loss
from distillbench.methods.llm.kd import forward_kl_loss
from distillbench.methods.llm.rkl import reverse_kl_loss
from distillbench.methods.llm.tvd import tvd_loss

BATCH, LENGTH, HIDDEN, TEACHER_HIDDEN, VOCAB = 2, 6, 4, 3, 7


def _setting(seed=0, masked=True, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=generator, dtype=torch.float64) * scale).to(dtype)

    student = {"hidden": randn(BATCH, LENGTH, HIDDEN), "weight": randn(VOCAB, HIDDEN), "bias": randn(VOCAB)}
    teacher = TeacherHead(randn(BATCH, LENGTH, TEACHER_HIDDEN), randn(VOCAB, TEACHER_HIDDEN, scale=2.0),
                          randn(VOCAB))
    labels = torch.randint(0, VOCAB, (BATCH, LENGTH), generator=generator)
    if masked:
        labels[0, :2] = -100
        labels[1, 4] = -100
    return student, teacher, labels


def _leaves(student):
    return {name: tensor.clone().requires_grad_() for name, tensor in student.items()}


# name -> (chunked loss (hidden, weight, teacher, labels, bias, chunk_size),
#          naive loss (logits, teacher_logits, labels))
CASES = {
    "forward_kl": (lambda h, w, t, l, b, c: chunked.chunked_forward_kl_loss(h, w, t, l, 1.0, student_bias=b,
                                                                            chunk_size=c),
                   lambda s, t, l: forward_kl_loss(s, t, l, 1.0)),
    "forward_kl_t0.7": (lambda h, w, t, l, b, c: chunked.chunked_forward_kl_loss(h, w, t, l, 0.7, student_bias=b,
                                                                                 chunk_size=c),
                        lambda s, t, l: forward_kl_loss(s, t, l, 0.7)),
    "reverse_kl_t2": (lambda h, w, t, l, b, c: chunked.chunked_reverse_kl_loss(h, w, t, l, 2.0, student_bias=b,
                                                                               chunk_size=c),
                      lambda s, t, l: reverse_kl_loss(s, t, l, 2.0)),
    **{f"jsd_b{beta}": (lambda h, w, t, l, b, c, beta=beta: chunked.chunked_generalized_jsd_loss(
        h, w, t, l, beta, 0.9, student_bias=b, chunk_size=c),
        lambda s, t, l, beta=beta: generalized_jsd_loss(s, t, l, beta, 0.9)) for beta in (0.0, 0.5, 1.0)},
    **{f"skew_forward_a{alpha}": (lambda h, w, t, l, b, c, alpha=alpha: chunked.chunked_skew_forward_kl(
        h, w, t, l, alpha, student_bias=b, chunk_size=c),
        lambda s, t, l, alpha=alpha: skew_forward_kl(s, t, l, alpha)) for alpha in (0.1, 0.5)},
    **{f"skew_reverse_a{alpha}": (lambda h, w, t, l, b, c, alpha=alpha: chunked.chunked_skew_reverse_kl(
        h, w, t, l, alpha, student_bias=b, chunk_size=c),
        lambda s, t, l, alpha=alpha: skew_reverse_kl(s, t, l, alpha)) for alpha in (0.1, 0.5)},
    # the skew divergences take no temperature in distillm.py; the shared engine still applies one
    "skew_forward_t2": (lambda h, w, t, l, b, c: chunked_divergence_loss(
        chunked.skew_forward_chunk(0.1), h, w, t, l, 2.0, student_bias=b, chunk_size=c),
        lambda s, t, l: skew_forward_kl(s / 2.0, t / 2.0, l, 0.1)),
    "tvd_t1.5": (lambda h, w, t, l, b, c: chunked.chunked_tvd_loss(h, w, t, l, 1.5, student_bias=b, chunk_size=c),
                 lambda s, t, l: tvd_loss(s, t, l, 1.5)),
}


@pytest.mark.parametrize("masked", [True, False], ids=["masked", "all-tokens"])
@pytest.mark.parametrize("teacher_kind", ["logits", "head"])
@pytest.mark.parametrize("chunk_size", [1, 4, 5, 64])  # 4 and 5 divide neither the 9 valid nor the 12 tokens
@pytest.mark.parametrize("case", list(CASES))
def test_chunked_equals_naive(case, chunk_size, teacher_kind, masked):
    chunked_fn, naive_fn = CASES[case]
    student, teacher, labels = _setting(seed=len(case), masked=masked)
    teacher_logits = F.linear(teacher.hidden, teacher.weight, teacher.bias)
    fast, slow = _leaves(student), _leaves(student)

    fast_loss = chunked_fn(fast["hidden"], fast["weight"], teacher_logits if teacher_kind == "logits" else teacher,
                           labels, fast["bias"], chunk_size)
    slow_loss = naive_fn(F.linear(slow["hidden"], slow["weight"], slow["bias"]), teacher_logits, labels)
    fast_loss.backward()
    slow_loss.backward()

    assert slow_loss.item() > 0
    torch.testing.assert_close(fast_loss, slow_loss, rtol=1e-12, atol=1e-12)
    for name in student:
        torch.testing.assert_close(fast[name].grad, slow[name].grad, rtol=1e-10, atol=1e-12, msg=name)


def test_jsd_endpoints_are_the_chunked_kls():
    student, teacher, labels = _setting(seed=3)
    args = (student["hidden"], student["weight"], teacher, labels)
    torch.testing.assert_close(chunked.chunked_generalized_jsd_loss(*args, 0.0, 0.9),
                               chunked.chunked_forward_kl_loss(*args, 0.9) / 0.9**2, rtol=1e-15, atol=0)
    torch.testing.assert_close(chunked.chunked_generalized_jsd_loss(*args, 1.0, 0.9),
                               chunked.chunked_reverse_kl_loss(*args, 0.9) / 0.9**2, rtol=1e-15, atol=0)


VALUES_CASES = {  # chunk function, temperature, scale, naive loss
    "forward_kl": (chunked.forward_kl_chunk, 0.7, 0.7**2, lambda s, t, l: forward_kl_loss(s, t, l, 0.7)),
    "jsd": (chunked.jsd_chunk(0.5), 0.9, 1.0, lambda s, t, l: generalized_jsd_loss(s, t, l, 0.5, 0.9)),
    "skew_forward": (chunked.skew_forward_chunk(0.1), 1.0, 1.0, lambda s, t, l: skew_forward_kl(s, t, l, 0.1)),
    "skew_reverse": (chunked.skew_reverse_chunk(0.5), 1.0, 1.0, lambda s, t, l: skew_reverse_kl(s, t, l, 0.5)),
    "tvd": (chunked.tvd_chunk, 1.5, 1.0, lambda s, t, l: tvd_loss(s, t, l, 1.5)),
}


@pytest.mark.parametrize("case", list(VALUES_CASES))
def test_per_token_values_recomputed_in_backward_equal_naive(case):
    """The per-token path (logits recomputed in backward), reduced to the same mean."""
    chunk_fn, temperature, scale, naive_fn = VALUES_CASES[case]
    student, teacher, labels = _setting(seed=5)
    fast, slow = _leaves(student), _leaves(student)
    values = chunked_values(chunk_fn, fast["hidden"], fast["weight"], teacher, labels, temperature,
                            student_bias=fast["bias"], chunk_size=4)
    fast_loss = scale * values.sum() / (labels != -100).sum()
    slow_loss = naive_fn(F.linear(slow["hidden"], slow["weight"], slow["bias"]), F.linear(*teacher), labels)
    fast_loss.backward()
    slow_loss.backward()
    assert torch.all(values[labels == -100] == 0)
    torch.testing.assert_close(fast_loss, slow_loss, rtol=1e-12, atol=1e-12)
    for name in student:
        torch.testing.assert_close(fast[name].grad, slow[name].grad, rtol=1e-10, atol=1e-12, msg=name)


def test_loss_gradient_is_scaled_by_the_incoming_gradient():
    student, teacher, labels = _setting(seed=2)
    fast, slow = _leaves(student), _leaves(student)
    fast_loss = chunked.chunked_tvd_loss(fast["hidden"], fast["weight"], teacher, labels, student_bias=fast["bias"])
    slow_loss = tvd_loss(F.linear(slow["hidden"], slow["weight"], slow["bias"]), F.linear(*teacher), labels)
    (2.5 * fast_loss + fast["hidden"].sum()).backward()
    (2.5 * slow_loss + slow["hidden"].sum()).backward()
    for name in student:
        torch.testing.assert_close(fast[name].grad, slow[name].grad, rtol=1e-10, atol=1e-12, msg=name)


def test_loss_backward_runs_once_and_no_grad_computes_only_the_value():
    student, teacher, labels = _setting()
    leaves = _leaves(student)
    loss = chunked.chunked_forward_kl_loss(leaves["hidden"], leaves["weight"], teacher, labels)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="once"):
        loss.backward()
    with torch.no_grad():
        value = chunked.chunked_forward_kl_loss(leaves["hidden"], leaves["weight"], teacher, labels)
    assert value.grad_fn is None and torch.equal(value, loss.detach())


def test_no_valid_token_gives_zero_loss_and_gradient():
    student, teacher, labels = _setting()
    leaves = _leaves(student)
    loss = chunked.chunked_forward_kl_loss(leaves["hidden"], leaves["weight"], teacher, torch.full_like(labels, -100),
                                           student_bias=leaves["bias"])
    loss.backward()
    assert loss.item() == 0
    assert all(torch.count_nonzero(leaves[name].grad) == 0 for name in leaves)


def test_frozen_weight_gets_no_gradient_and_hidden_still_does():
    student, teacher, labels = _setting()
    hidden = student["hidden"].clone().requires_grad_()
    chunked.chunked_reverse_kl_loss(hidden, student["weight"], teacher, labels).backward()
    assert hidden.grad is not None and student["weight"].grad is None


@pytest.mark.parametrize("chunk_size", [1, 5, 64])
def test_token_logps_equal_log_softmax_gather(chunk_size):
    student, _, labels = _setting(seed=11)
    fast, slow = _leaves(student), _leaves(student)
    fast_logps = chunked_token_logps(fast["hidden"], fast["weight"], labels, fast["bias"], chunk_size)
    logits = F.linear(slow["hidden"], slow["weight"], slow["bias"])
    mask = labels != -100
    slow_logps = torch.log_softmax(logits, -1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask
    # a non-uniform downstream use (as DPO's per-sequence sums and margins are), so every token's gradient counts
    coefficients = torch.randn(labels.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    (fast_logps * coefficients).sum().backward()
    (slow_logps * coefficients).sum().backward()

    assert fast_logps.shape == labels.shape
    torch.testing.assert_close(fast_logps, slow_logps, rtol=1e-12, atol=1e-12)
    for name in student:
        torch.testing.assert_close(fast[name].grad, slow[name].grad, rtol=1e-10, atol=1e-12, msg=name)


def test_half_precision_inputs_give_gradients_in_their_dtype():
    student, teacher, labels = _setting(dtype=torch.bfloat16)
    leaves = _leaves(student)
    loss = chunked.chunked_forward_kl_loss(leaves["hidden"], leaves["weight"], teacher, labels,
                                           student_bias=leaves["bias"], chunk_size=4)
    loss.backward()
    reference = forward_kl_loss(F.linear(student["hidden"], student["weight"], student["bias"]),
                                F.linear(*teacher), labels)
    assert loss.dtype == torch.float32 and torch.allclose(loss, reference, rtol=2e-2)
    assert all(leaves[name].grad.dtype == torch.bfloat16 for name in leaves)


def test_vocabulary_mismatch_is_an_error():
    student, teacher, labels = _setting()
    with pytest.raises(ValueError, match="vocabulary"):
        chunked.chunked_forward_kl_loss(student["hidden"], student["weight"],
                                        TeacherHead(teacher.hidden, teacher.weight[:-1]), labels)


# Structural memory checks (no timing, no allocator statistics): shapes chosen so that the
# full logits (N × V) are larger than a chunk's (chunk × V) and the weight (V × H).
TOKENS, WIDE_VOCAB, CHUNK = 64, 50, 8


def _wide_setting():
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(TOKENS, HIDDEN, generator=generator, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(WIDE_VOCAB, HIDDEN, generator=generator, dtype=torch.float64, requires_grad=True)
    teacher = TeacherHead(torch.randn(TOKENS, TEACHER_HIDDEN, generator=generator, dtype=torch.float64),
                          torch.randn(WIDE_VOCAB, TEACHER_HIDDEN, generator=generator, dtype=torch.float64))
    labels = torch.randint(0, WIDE_VOCAB, (TOKENS,), generator=generator)
    return hidden, weight, teacher, labels


def _kept_for_backward(loss_fn) -> list[tuple[int, int]]:
    """(numel, data_ptr) of every tensor the graph of loss_fn() keeps for backward: those autograd
    saves (seen through saved_tensors_hooks) and the gradients a chunked loss keeps on its node."""
    kept = []

    def pack(tensor):
        kept.append((tensor.numel(), tensor.data_ptr()))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = loss_fn()
    nodes, seen = [output.grad_fn], set()
    while nodes:
        node = nodes.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        kept += [(grad.numel(), grad.data_ptr()) for grad in getattr(node, "grads", None) or () if grad is not None]
        nodes += [next_node for next_node, _ in node.next_functions]
    return kept


@pytest.mark.parametrize("teacher_kind", ["logits", "head"])
def test_forward_keeps_no_tokens_by_vocab_tensor(teacher_kind):
    hidden, weight, teacher, labels = _wide_setting()
    teacher_logits = F.linear(teacher.hidden, teacher.weight)
    teacher_input = teacher_logits if teacher_kind == "logits" else teacher
    full = TOKENS * WIDE_VOCAB

    naive = _kept_for_backward(lambda: generalized_jsd_loss(hidden @ weight.T, teacher_logits, labels, 0.5))
    assert any(numel >= full for numel, _ in naive)  # the hook does see the naive loss's full logits

    loss = _kept_for_backward(lambda: chunked.chunked_generalized_jsd_loss(hidden, weight, teacher_input, labels, 0.5,
                                                                           chunk_size=CHUNK))
    # the gradients of the hidden states and the weight, nothing vocabulary-by-tokens
    assert sorted(numel for numel, _ in loss) == sorted([TOKENS * HIDDEN, WIDE_VOCAB * HIDDEN])

    values = _kept_for_backward(lambda: chunked_values(chunked.tvd_chunk, hidden, weight, teacher_input,
                                                       labels, chunk_size=CHUNK))
    # the inputs; the only N × V tensor allowed is the caller's own teacher logits, kept by reference
    large = [pointer for numel, pointer in values if numel >= full]
    assert large == ([teacher_logits.data_ptr()] if teacher_kind == "logits" else [])


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor any operation creates."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(tensor, torch.Tensor):
                self.largest = max(self.largest, tensor.numel())
        return out


@pytest.mark.parametrize("loss", ["forward_kl", "jsd", "skew_reverse", "tvd", "token_logps"])
def test_no_operation_creates_a_tokens_by_vocab_tensor(loss):
    hidden, weight, teacher, labels = _wide_setting()
    run = {
        "forward_kl": lambda: chunked.chunked_forward_kl_loss(hidden, weight, teacher, labels, 2.0, chunk_size=CHUNK),
        "jsd": lambda: chunked.chunked_generalized_jsd_loss(hidden, weight, teacher, labels, 0.5, chunk_size=CHUNK),
        "skew_reverse": lambda: chunked.chunked_skew_reverse_kl(hidden, weight, teacher, labels, chunk_size=CHUNK),
        "tvd": lambda: chunked.chunked_tvd_loss(hidden, weight, teacher, labels, chunk_size=CHUNK),
        "token_logps": lambda: chunked_token_logps(hidden, weight, labels, chunk_size=CHUNK).sum(),
    }[loss]
    with _LargestTensor() as fast:
        run().backward()
    with _LargestTensor() as naive:
        forward_kl_loss(hidden @ weight.T, F.linear(teacher.hidden, teacher.weight), labels).backward()
    assert naive.largest == TOKENS * WIDE_VOCAB
    assert fast.largest <= max(CHUNK * WIDE_VOCAB, WIDE_VOCAB * HIDDEN) < TOKENS * WIDE_VOCAB
