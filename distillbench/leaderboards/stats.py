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
