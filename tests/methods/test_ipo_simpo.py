"""ipo and simpo losses against naive loops and against TRL's CPO implementation on the same tensors."""

import math
from types import SimpleNamespace

import pytest
import torch

from distillbench.methods.llm.dpo import dpo_loss
from distillbench.methods.llm.ipo import ipo_loss
from distillbench.methods.llm.simpo import simpo_loss
from tests.conftest import assert_same_value_and_gradients, leaf_copies


def _logps(seed, n=5):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(n, generator=generator, dtype=torch.float64) for _ in range(4)]


def test_ipo_matches_naive_value_and_gradient():
    pc, pr, rc, rr = _logps(0)
    (a, c), (b, d) = leaf_copies(pc, pr), leaf_copies(pc, pr)
    fast = ipo_loss(a, c, rc, rr, beta=0.2)
    slow = sum(((b[i] - rc[i]) - (d[i] - rr[i]) - 1 / 0.4) ** 2 for i in range(5)) / 5
    assert_same_value_and_gradients(fast, slow, (a, c), (b, d))


def test_simpo_matches_naive_value_and_gradient():
    pc, pr, _, _ = _logps(1)
    (a, c), (b, d) = leaf_copies(pc, pr), leaf_copies(pc, pr)
    fast = simpo_loss(a, c, beta=2.0, gamma=1.6)
    slow = sum(-torch.log(torch.sigmoid(2.0 * b[i] - 2.0 * d[i] - 1.6)) for i in range(5)) / 5
    assert_same_value_and_gradients(fast, slow, (a, c), (b, d))


def _trl_cpo(loss_type, beta, gamma=0.5, label_smoothing=0.0):
    cpo = pytest.importorskip("trl.experimental.cpo.cpo_trainer")
    fake = SimpleNamespace(alpha=0.0, beta=beta, simpo_gamma=gamma, label_smoothing=label_smoothing,
                           loss_type=loss_type,
                           accelerator=SimpleNamespace(device=torch.device("cpu")))
    return lambda chosen, rejected: cpo.CPOTrainer.cpo_loss(fake, chosen, rejected)[0].mean()


def test_simpo_matches_trl():
    pc, pr, _, _ = _logps(2)
    assert torch.allclose(simpo_loss(pc, pr, beta=2.0, gamma=1.6), _trl_cpo("simpo", 2.0, 1.6)(pc, pr))


def test_ipo_matches_trl_on_reference_corrected_log_ratios():
    pc, pr, rc, rr = _logps(3)
    # TRL's CPO IPO is reference-free: fed the log-ratios Δ = ℓθ − ℓ_ref it is IPO.
    assert torch.allclose(ipo_loss(pc, pr, rc, rr, beta=0.1), _trl_cpo("ipo", 0.1)(pc - rc, pr - rr))


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])  # ε > 0: the conservative (cDPO) loss
def test_dpo_matches_trl_sigmoid_on_log_ratios(label_smoothing):
    pc, pr, rc, rr = _logps(4)
    assert torch.allclose(dpo_loss(pc, pr, rc, rr, beta=0.1, label_smoothing=label_smoothing),
                          _trl_cpo("sigmoid", 0.1, label_smoothing=label_smoothing)(pc - rc, pr - rr))
    assert math.isclose(ipo_loss(pc, pc, rc, rc, beta=0.5).item(), 1.0)
