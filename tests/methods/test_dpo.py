"""dpo_loss and sequence_logps against naive per-example loops: values and gradients."""

import math

import pytest
import torch

from distillbench.kinds.text_lm.logps import sequence_logps
from distillbench.methods.llm.dpo import dpo_loss
from tests.conftest import assert_same_value_and_gradients, leaf_copies


def naive_dpo(pc, pr, rc, rr, beta, eps):
    total = 0.0
    for i in range(len(pc)):
        h = (pc[i] - rc[i]) - (pr[i] - rr[i])
        sig = lambda z: 1 / (1 + torch.exp(-z))  # noqa: E731
        total = total - (1 - eps) * torch.log(sig(beta * h)) - eps * torch.log(sig(-beta * h))
    return total / len(pc)


@pytest.mark.parametrize("beta, eps", [(0.1, 0.0), (0.5, 0.2), (2.0, 0.0)])
def test_dpo_loss_matches_naive(beta, eps):
    generator = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (torch.randn(6, generator=generator, dtype=torch.float64) * 5 for _ in range(4))
    (a, c), (b, d) = leaf_copies(pc, pr), leaf_copies(pc, pr)
    fast, slow = dpo_loss(a, c, rc, rr, beta, eps), naive_dpo(b, d, rc, rr, beta, eps)
    assert_same_value_and_gradients(fast, slow, (a, c), (b, d))


def test_dpo_loss_is_log2_at_the_reference():
    logps = torch.tensor([-3.0, -7.0])
    assert math.isclose(dpo_loss(logps, logps, logps, logps).item(), math.log(2), rel_tol=1e-6)


class Fixed(torch.nn.Module):
    """A 'model' that returns fixed logits, so sequence_logps can be checked by hand."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, input_ids, attention_mask):
        return type("Out", (), {"logits": self.logits})()


def test_sequence_logps_sums_response_tokens_only():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 5, 4, generator=generator, dtype=torch.float64)
    input_ids = torch.tensor([[0, 1, 2, 3, 0], [1, 1, 0, 2, 2]])
    labels = torch.tensor([[-100, -100, 2, 3, -100], [-100, 1, 0, 2, 2]])
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}
    expected = []
    for b in range(2):
        total = 0.0
        for t in range(1, 5):
            if labels[b, t] != -100:
                total += (logits[b, t - 1] - torch.logsumexp(logits[b, t - 1], 0))[labels[b, t]].item()
        expected.append(total)
    assert torch.allclose(sequence_logps(Fixed(logits), batch), torch.tensor(expected, dtype=torch.float64))


def test_rpo_alpha_adds_the_length_normalised_nll_of_the_chosen_response():
    from distillbench.methods.llm.dpo import DPO

    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 6, 5, generator=generator, dtype=torch.float64)
    labels = torch.tensor([[-100, -100, 1, 2, 3, -100], [-100, 4, 0, -100, -100, -100]])
    batch = {f"{side}_{key}": value for side in ("chosen", "rejected")
             for key, value in (("input_ids", labels.clamp(min=0)), ("attention_mask", torch.ones_like(labels)),
                                ("labels", labels))}
    batch.update(reference_chosen_logps=torch.zeros(2), reference_rejected_logps=torch.zeros(2))
    model = Fixed(logits.requires_grad_())
    terms = DPO(rpo_alpha=0.5).loss(model, batch)
    naive = 0.5 * sum(_naive_mean_nll(logits[row], labels[row]) for row in range(2)) / 2  # mean over pairs
    assert torch.allclose(terms["nll"], naive)
    (got,) = torch.autograd.grad(terms["nll"], logits)
    (want,) = torch.autograd.grad(naive, logits)
    assert torch.allclose(got, want)
    assert torch.allclose(sequence_logps(model, batch, "chosen", average=True),
                          torch.stack([-_naive_mean_nll(logits[row], labels[row]) for row in range(2)]))
    assert set(DPO().loss(model, batch)) == {"dpo"}


def _naive_mean_nll(logits, labels):
    """−(1/|y|) Σ_t log p(y_t): position t's logits predict the label at t + 1; -100 is not a response token."""
    terms = [-torch.log_softmax(logits[t], dim=-1)[labels[t + 1]]
             for t in range(len(labels) - 1) if labels[t + 1] != -100]
    return sum(terms) / len(terms)
