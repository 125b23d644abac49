"""Per-token values from a causal LM's hidden states and LM head, computed chunk by chunk, without ever
holding the full [tokens × vocab] logits: the chunk loop under the chunked distillation losses
(methods/llm/chunked.py) and under `sequence_logps` (logps.py) when a batch sets ``chunk_size``.

    chunked_values             per-token values of a per-chunk function (differentiable)
    chunked_divergence_loss    their mean over the tokens whose label is not -100 (a loss)
    chunked_token_logps        == log_softmax(logits).gather(labels)   (the DPO family's log-probs)
    lm_head_inputs             a transformers causal LM's hidden states and head on a batch

Two autograd.Functions share one chunk loop, parametrised by a per-chunk function (`ChunkFn`) that
returns the per-token values and their analytic gradient with respect to the student's
(temperature-scaled) logits; no autograd runs inside a chunk. The loop walks the tokens
that carry a loss in chunks of `chunk_size` rows and computes each chunk's logits
(hidden @ weight.T + bias) and the teacher's log-probs; neither Function keeps a logits
tensor for backward.

- A loss (a mean over tokens: every token's weight is known in forward) computes the
  gradients of the hidden states, weight and bias in the same forward pass over the
  chunks; its backward only scales them. Recomputing the chunks' logits in backward
  instead costs one more [tokens × H × V] matmul and all the elementwise work again:
  1.25× the naive forward KL's CPU time against 0.82× this way (bench/kd_loss.py, Qwen2.5-
  0.5B's head, 2,048 tokens). The price: the weight-sized gradient exists from the loss's
  forward on (naive autograd creates it in backward), and backward runs once.
- Per-token values (`chunked_token_logps`, `chunked_values`), whose downstream weights
  are unknown in forward (DPO's per-sequence sums and margins), keep only the values and
  recompute each chunk's logits in backward.

Peak memory is a few [chunk_size × V] tensors plus one weight-sized gradient, instead of
several [tokens × V] ones.

The teacher side is either its logits ([..., V], e.g. the harness's cached teacher signal)
or `TeacherHead(hidden, weight, bias)`, whose logits are computed chunk by chunk too, without
gradient. The teacher never gets a gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from distillbench.core.errors import UserInputError
from distillbench.core.tensors import upcast

IGNORE_INDEX = -100
# 256 rows × a 152k vocabulary is 156 MB per fp32 chunk tensor, and a step holds about five.
# On CPU, 128-row chunks make the logits matmuls ~10% slower per row, 1,024-row ones only
# ~5% faster for four times the memory (bench/kd_loss.py --chunk-sizes).
DEFAULT_CHUNK_SIZE = 256


class TeacherHead(NamedTuple):
    """The teacher's final hidden states [..., H_T] and LM head (weight [V, H_T], optional bias [V])."""

    hidden: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor | None = None


# A per-chunk function: (student_logp [C, V], teacher_logp [C, V] or None, labels [C], with_grad)
# -> (values [C], d values / d student logits [C, V] (the logits already divided by τ) or None).
# It may overwrite its inputs (they are the chunk's own temporaries): one [C, V] tensor less.
ChunkFn = Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor, bool], tuple[torch.Tensor, torch.Tensor | None]]


def token_logp_chunk(student_logp, teacher_logp, labels, with_grad):
    values = student_logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    if not with_grad:
        return values, None
    # d log q_y / d z = onehot(y) − q
    one_hot = torch.ones_like(values).unsqueeze(-1)
    return values, student_logp.exp_().neg_().scatter_add_(-1, labels.unsqueeze(-1), one_hot)


def _chunks(labels: torch.Tensor, chunk_size: int) -> list:
    """Row selectors over the tokens that carry a loss: slices when none is masked, index tensors otherwise."""
    valid = (labels != IGNORE_INDEX).nonzero().squeeze(1)
    if valid.numel() == labels.numel():
        return [slice(start, min(start + chunk_size, labels.numel())) for start in range(0, labels.numel(), chunk_size)]
    return list(valid.split(chunk_size))


def _log_probs(hidden, weight, bias, temperature):
    logits = upcast(F.linear(hidden, weight, bias))
    if temperature != 1:
        logits.div_(temperature)  # a fresh tensor: dividing in place saves a [chunk, V] copy
    return torch.log_softmax(logits, dim=-1)


def _teacher_log_probs(teacher_hidden, teacher_weight, teacher_bias, teacher_logits, rows, temperature):
    if teacher_logits is not None:
        logits = upcast(teacher_logits[rows])
        return torch.log_softmax(logits / temperature if temperature != 1 else logits, dim=-1)
    if teacher_hidden is not None:
        return _log_probs(teacher_hidden[rows], teacher_weight, teacher_bias, temperature)
    return None


def _walk(chunk_fn, student_hidden, student_weight, student_bias, teacher, labels, temperature, chunk_size,
          token_weights=None, needs=(False, False, False)):
    """Per-token values [N] of chunk_fn (0 where the label is -100), chunk by chunk; with token_weights [N],
    also the gradients of Σ token_weights·values w.r.t. (hidden, weight, bias), for those `needs` asks for."""
    values = student_hidden.new_zeros(labels.shape, dtype=upcast(student_hidden).dtype)
    with_grad = token_weights is not None and any(needs)
    need_hidden, need_weight, need_bias = (with_grad and need for need in needs)
    grad_hidden = torch.zeros_like(student_hidden) if need_hidden else None
    # fp32 accumulators for half-precision parameters: the chunks' partial sums add up in fp32
    grad_weight = torch.zeros_like(student_weight, dtype=upcast(student_weight).dtype) if need_weight else None
    grad_bias = torch.zeros_like(student_bias, dtype=upcast(student_bias).dtype) if need_bias else None
    for rows in _chunks(labels, chunk_size):
        hidden = student_hidden[rows]
        student_logp = _log_probs(hidden, student_weight, student_bias, temperature)
        teacher_logp = _teacher_log_probs(*teacher, rows, temperature)
        chunk_values, grad_logits = chunk_fn(student_logp, teacher_logp, labels[rows], with_grad)
        values[rows] = chunk_values.to(values.dtype)
        if not with_grad:
            continue
        del student_logp, teacher_logp
        # the chain rule through logits / τ, and each token's weight in the output
        grad_logits.mul_(token_weights[rows].unsqueeze(-1) / temperature)
        if grad_hidden is not None:
            grad_hidden[rows] = grad_logits.to(hidden.dtype) @ student_weight
        if grad_weight is not None:
            grad_weight.addmm_(grad_logits.T, upcast(hidden))
        if grad_bias is not None:
            grad_bias += grad_logits.sum(0)
    if grad_weight is not None:
        grad_weight = grad_weight.to(student_weight.dtype)
    if grad_bias is not None:
        grad_bias = grad_bias.to(student_bias.dtype)
    return values, (grad_hidden, grad_weight, grad_bias)


class _ChunkedLoss(torch.autograd.Function):
    """Σ token_weights·values from (hidden [N, H], weight [V, H], bias), for a loss (a scalar).

    The per-token weights of a mean are known in forward, so the gradients are computed there,
    in the same pass over the chunks as the values: no logits are recomputed, and backward
    only scales them by the incoming gradient. They are kept on ctx, not saved for backward,
    so that backward can hand them over without a copy; backward can therefore run once."""

    @staticmethod
    def forward(ctx, student_hidden, student_weight, student_bias, teacher_hidden, teacher_weight, teacher_bias,
                teacher_logits, labels, token_weights, chunk_fn, temperature, chunk_size, grad_enabled):
        needs = ctx.needs_input_grad[:3] if grad_enabled else (False, False, False)
        values, ctx.grads = _walk(chunk_fn, student_hidden, student_weight, student_bias,
                                  (teacher_hidden, teacher_weight, teacher_bias, teacher_logits), labels, temperature,
                                  chunk_size, token_weights, needs)
        return (values * token_weights).sum()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        if ctx.grads is None:
            raise RuntimeError("a chunked loss computes its gradients in forward and hands them over once: "
                               "backward through it a second time (retain_graph) is not supported")
        grads, ctx.grads = ctx.grads, None
        scaled = [grad.mul_(grad_output.to(grad.dtype)) if grad is not None else None for grad in grads]
        return (*scaled, *[None] * 10)


class _ChunkedValues(torch.autograd.Function):
    """Per-token values [N] from (hidden [N, H], weight [V, H], bias); 0 where the label is -100.

    Their downstream weights are not known in forward (e.g. DPO's per-sequence sums and
    margins), so forward keeps only the values and backward recomputes each chunk's logits."""

    @staticmethod
    def forward(ctx, student_hidden, student_weight, student_bias, teacher_hidden, teacher_weight, teacher_bias,
                teacher_logits, labels, chunk_fn, temperature, chunk_size):
        ctx.save_for_backward(student_hidden, student_weight, student_bias, teacher_hidden, teacher_weight,
                              teacher_bias, teacher_logits, labels)
        ctx.chunk_fn, ctx.temperature, ctx.chunk_size = chunk_fn, temperature, chunk_size
        return _walk(chunk_fn, student_hidden, student_weight, student_bias,
                     (teacher_hidden, teacher_weight, teacher_bias, teacher_logits), labels, temperature, chunk_size)[0]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_values):
        student_hidden, student_weight, student_bias, *teacher, labels = ctx.saved_tensors
        grads = _walk(ctx.chunk_fn, student_hidden, student_weight, student_bias, teacher, labels, ctx.temperature,
                      ctx.chunk_size, grad_values, ctx.needs_input_grad[:3])[1]
        return (*grads, *[None] * 8)


def _flat_inputs(student_hidden, student_weight, teacher, labels, chunk_size):
    """[N, H] hidden, [N] labels and the teacher as (hidden, weight, bias, logits), checked against each other."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    hidden = student_hidden.reshape(-1, student_hidden.shape[-1])
    flat_labels = labels.reshape(-1)
    if hidden.shape[0] != flat_labels.shape[0]:
        raise ValueError(f"{hidden.shape[0]} hidden-state rows but {flat_labels.shape[0]} labels")
    if teacher is None:
        return hidden, flat_labels, (None, None, None, None)
    if isinstance(teacher, TeacherHead):
        flat_teacher = (teacher.hidden.detach().reshape(-1, teacher.hidden.shape[-1]), teacher.weight.detach(),
                        teacher.bias.detach() if teacher.bias is not None else None, None)
        teacher_rows, teacher_vocab = flat_teacher[0].shape[0], flat_teacher[1].shape[0]
    else:
        flat_teacher = (None, None, None, teacher.detach().reshape(-1, teacher.shape[-1]))
        teacher_rows, teacher_vocab = flat_teacher[3].shape
    if teacher_vocab != student_weight.shape[0]:
        raise ValueError(f"teacher vocabulary {teacher_vocab} != student vocabulary {student_weight.shape[0]}: "
                         "distillation over logits needs one shared vocabulary")
    if teacher_rows != hidden.shape[0]:
        raise ValueError(f"teacher has {teacher_rows} token rows, the student {hidden.shape[0]}")
    return hidden, flat_labels, flat_teacher


def chunked_values(chunk_fn: ChunkFn, student_hidden: torch.Tensor, student_weight: torch.Tensor,
                   teacher: torch.Tensor | TeacherHead | None, labels: torch.Tensor, temperature: float = 1.0, *,
                   student_bias: torch.Tensor | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """Per-token values of `chunk_fn`, shaped like `labels`, 0 where the label is -100; differentiable
    for any downstream use (backward recomputes the logits).

    student_hidden [..., H], student_weight [V, H], student_bias [V] or None; teacher: its logits
    [..., V], a TeacherHead, or None (for values that need no teacher); labels [...].
    """
    hidden, flat_labels, flat_teacher = _flat_inputs(student_hidden, student_weight, teacher, labels, chunk_size)
    values = _ChunkedValues.apply(hidden, student_weight, student_bias, *flat_teacher, flat_labels, chunk_fn,
                                  temperature, chunk_size)
    return values.reshape(labels.shape)


def chunked_divergence_loss(chunk_fn: ChunkFn, student_hidden, student_weight, teacher, labels,
                            temperature: float = 1.0, *, scale: float = 1.0, student_bias=None,
                            chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """scale × the mean over tokens whose label is not -100 of `chunk_fn`'s per-token divergence."""
    hidden, flat_labels, flat_teacher = _flat_inputs(student_hidden, student_weight, teacher, labels, chunk_size)
    mask = flat_labels != IGNORE_INDEX
    token_weights = mask.to(upcast(hidden).dtype) / mask.sum().clamp(min=1)
    # Function.forward always runs without grad mode, so whether gradients are wanted is read here
    loss = _ChunkedLoss.apply(hidden, student_weight, student_bias, *flat_teacher, flat_labels, token_weights,
                              chunk_fn, temperature, chunk_size, torch.is_grad_enabled())
    return scale * loss


def chunked_token_logps(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                        bias: torch.Tensor | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """Per-token log p(label) shaped like `labels` (0 where the label is -100), and its gradient,
    from hidden states [..., H] and the LM head: `sequence_logps` without the full logits."""
    return chunked_values(token_logp_chunk, hidden, weight, None, labels, student_bias=bias, chunk_size=chunk_size)


def lm_head_inputs(model: torch.nn.Module, batch: dict, side: str | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(hidden [B, T-1, H], head weight [V, H], head bias or None) of a transformers causal LM on the
    batch (`side`: a preference batch's 'chosen', 'rejected', ...): what `response_logits` would
    multiply, without multiplying. Models whose logits are not hidden @ W.T + b refuse."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(model, "get_output_embeddings") or model.get_output_embeddings() is None:
        raise UserInputError(f"budget.loss_chunk_size needs a transformers causal LM; got {type(model).__name__}")
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name, plain in (("final_logit_softcapping", None), ("logit_scale", 1.0), ("logits_scaling", 1.0)):
        value = getattr(text_config, name, plain)
        if value not in (plain, None):
            raise UserInputError(f"budget.loss_chunk_size: {type(model).__name__} transforms its logits "
                                 f"({name} = {value}); chunked losses assume logits = hidden @ W.T + b")
    prefix = f"{side}_" if side else ""
    outputs = model.base_model(input_ids=batch[f"{prefix}input_ids"], attention_mask=batch[f"{prefix}attention_mask"])
    head = model.get_output_embeddings()
    return outputs.last_hidden_state[:, :-1], head.weight, head.bias
