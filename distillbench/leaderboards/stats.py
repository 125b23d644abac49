"""Confidence intervals over items."""

from __future__ import annotations

import numpy as np

BOOTSTRAP_RESAMPLES = 2000


def bootstrap_ci(values, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over items (deterministic for a given seed)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return (float(low), float(high))


def summarize(values) -> dict:
    """{"mean", "ci95", "n"} of per-item values."""
    values = np.asarray(values, dtype=np.float64)
    low, high = bootstrap_ci(values)
    return {"mean": float(values.mean()) if values.size else float("nan"), "ci95": [low, high], "n": int(values.size)}


def paired_difference(a, b, resamples: int = 10_000, seed: int = 0) -> dict:
    """Mean of a − b over the same items, its 95% paired bootstrap CI, and a two-sided p-value
    from the paired sign-flip permutation test (H0: the per-item differences are symmetric about 0)."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if diff.size == 0:
        raise ValueError("no paired items")
    rng = np.random.default_rng(seed)
    low, high = bootstrap_ci(diff, seed=seed)
    signs = rng.choice([-1.0, 1.0], size=(resamples, diff.size))
    null = np.abs((signs * diff).mean(axis=1))
    p_value = (1 + np.sum(null >= abs(diff.mean()) - 1e-12)) / (resamples + 1)
    return {"diff": float(diff.mean()), "ci95": [low, high], "p": float(p_value), "n": int(diff.size),
            "test": "paired permutation"}


def mcnemar_exact(a, b) -> dict:
    """Exact McNemar test for paired 0/1 outcomes: a binomial test on the discordant pairs."""
    from math import comb

    a, b = np.asarray(a).astype(bool), np.asarray(b).astype(bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    discordant = only_a + only_b
    tail = sum(comb(discordant, k) for k in range(min(only_a, only_b) + 1)) / 2**discordant if discordant else 1.0
    low, high = bootstrap_ci(a.astype(float) - b.astype(float))
    return {"diff": float(a.mean() - b.mean()), "ci95": [low, high], "p": min(1.0, 2 * tail), "n": int(a.size),
            "only_a": only_a, "only_b": only_b, "test": "exact McNemar"}
