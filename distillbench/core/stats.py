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


# Corpus metrics that are ratios of sums (POPE's F1, CHAIRi) and macro means of such ratios: a statistic
# of per-item parts num[i, k], den[i, k] (items × constituents), value = mean_k Σ_i num[i, k] / Σ_i den[i, k].
# A plain per-item mean is the case K = 1, den = 1.

def pooled_value(num_sums, den_sums) -> np.ndarray:
    """mean over the last axis of num/den, each ratio 0 where its denominator is 0 (as the official scripts)."""
    num_sums, den_sums = np.broadcast_arrays(np.asarray(num_sums, dtype=np.float64),
                                             np.asarray(den_sums, dtype=np.float64))
    ratios = np.divide(num_sums, den_sums, out=np.zeros(num_sums.shape), where=den_sums != 0)
    return ratios.mean(axis=-1)


def _parts(num, den) -> tuple[np.ndarray, np.ndarray]:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    if num.ndim == 1:
        num, den = num[:, None], den[:, None]
    if num.shape != den.shape:
        raise ValueError(f"numerator parts {num.shape} and denominator parts {den.shape} differ")
    return num, den


def chunk_sizes(resamples: int, items: int, budget: int = 4_000_000):
    """Resamples per chunk, so a [chunk, items] matrix stays within `budget` numbers."""
    step = max(1, budget // max(1, items))
    for start in range(0, resamples, step):
        yield min(step, resamples - start)


def resample_counts(rng, items: int, size: int) -> np.ndarray:
    """How often each of `items` units is drawn in each of `size` bootstrap resamples (n draws with
    replacement from n), [size, items] as floats: a bincount of the drawn indices."""
    index = rng.integers(0, items, size=(size, items))
    counts = np.bincount((index + items * np.arange(size)[:, None]).ravel(), minlength=size * items)
    return counts.reshape(size, items).astype(np.float64)


def _resampled_sums(rng, parts: np.ndarray, resamples: int):
    """Column sums of `parts` [items, width] over bootstrap resamples of its rows, [resamples, width]:
    each resample's draw counts per item times the parts."""
    items = parts.shape[0]
    return np.concatenate([resample_counts(rng, items, size) @ parts for size in chunk_sizes(resamples, items)])


def pooled_summary(num, den, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0, level: float = 0.95) -> dict:
    """{"mean", "ci95", "n"} of a ratio-of-sums statistic; the CI is a percentile bootstrap over items
    that recomputes the statistic on each resample."""
    num, den = _parts(num, den)
    items = num.shape[0]
    if items == 0:
        return {"mean": float("nan"), "ci95": [float("nan"), float("nan")], "n": 0}
    width = num.shape[1]
    sums = _resampled_sums(np.random.default_rng(seed), np.hstack([num, den]), resamples)
    tail = (1 - level) / 2
    low, high = np.quantile(pooled_value(sums[:, :width], sums[:, width:]), [tail, 1 - tail])
    return {"mean": float(pooled_value(num.sum(axis=0), den.sum(axis=0))), "ci95": [float(low), float(high)],
            "n": int(items)}


def paired_pooled_difference(num_a, den_a, num_b, den_b, resamples: int = 10_000, seed: int = 0) -> dict:
    """a − b of a ratio-of-sums statistic over the same items: its 95% paired bootstrap CI (one resample
    of items for both) and a two-sided p-value from the paired permutation test that swaps the two rows'
    (num, den) on each item with probability 1/2 (H0: per item, the rows are exchangeable). For a plain
    mean (den = 1) a swap is the sign flip of `paired_difference`."""
    num_a, den_a = _parts(num_a, den_a)
    num_b, den_b = _parts(num_b, den_b)
    if num_a.shape != num_b.shape:
        raise ValueError(f"rows have parts of different shapes: {num_a.shape} and {num_b.shape}")
    items = num_a.shape[0]
    if items == 0:
        raise ValueError("no paired items")

    def statistic(num_a_sums, den_a_sums, num_b_sums, den_b_sums):
        return pooled_value(num_a_sums, den_a_sums) - pooled_value(num_b_sums, den_b_sums)

    observed = float(statistic(num_a.sum(0), den_a.sum(0), num_b.sum(0), den_b.sum(0)))
    rng = np.random.default_rng(seed)
    width = num_a.shape[1]
    sums = _resampled_sums(rng, np.hstack([num_a, den_a, num_b, den_b]), BOOTSTRAP_RESAMPLES)
    low, high = np.quantile(statistic(*(sums[:, k * width:(k + 1) * width] for k in range(4))), [0.025, 0.975])
    # Swapping item i moves (num_b − num_a)[i] into a's sums and out of b's: sums are linear in the swap mask.
    sums = [part.sum(0) for part in (num_a, den_a, num_b, den_b)]
    moved_num, moved_den = num_b - num_a, den_b - den_a
    exceed = 0
    for size in chunk_sizes(resamples, items):
        swap = rng.integers(0, 2, size=(size, items)).astype(np.float64)
        shift_num, shift_den = swap @ moved_num, swap @ moved_den
        null = statistic(sums[0] + shift_num, sums[1] + shift_den, sums[2] - shift_num, sums[3] - shift_den)
        exceed += int(np.sum(np.abs(null) >= abs(observed) - 1e-12))
    return {"diff": observed, "ci95": [float(low), float(high)], "p": float((1 + exceed) / (resamples + 1)),
            "n": int(items), "test": "paired permutation (ratio of sums)"}
