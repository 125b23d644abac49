"""Intervals and paired tests over seeds × items (issue #23): a method row's score varies with the
trained model (its seed) as well as with the test items, and its interval and p-values must carry both.

The model. A row's value for seed s on item i is

    y_si = μ + a_s + b_i + e_si,    a_s ~ (0, σ_s²),  b_i ~ (0, σ_i²),  e_si ~ (0, σ_e²),

the two-way crossed random-effects model (Searle, Casella & McCulloch 1992, *Variance Components*):
every seed scores the same items, so seeds and items are crossed, not nested. The mean over R seeds
and C items has variance σ_s²/R + σ_i²/C + σ_e²/(RC). Averaging each item over the seeds and
resampling items (`stats.summarize`, `stats.paired_difference`) measures σ_i²/C + σ_e²/(RC) only:
an interval about the R trained models, not about the method that trained them.

Estimation. With the mean squares of the [seeds, items] table, whose expectations are
E MS_seed = Cσ_s² + σ_e², E MS_item = Rσ_i² + σ_e², E MS_res = σ_e²,

    Var(ȳ) = (MS_seed + MS_item − MS_res) / (RC),

the ANOVA estimator (for balanced data the REML estimate where it is non-negative), and the mean is
referred to Student's t with Satterthwaite's (1946) degrees of freedom for a combination of mean
squares, as lmerTest does for a fitted mixed model (Kuznetsova, Brockhoff & Christensen 2017). With
three seeds that is about 2 to 5 degrees of freedom, and the t quantile (4.30 at 2) rather than the
normal 1.96 is what keeps a 95% interval at 95% (scipy's Student t). The closed form needs no model
fitting: statsmodels' MixedLM would fit these crossed effects iteratively, as variance components of
a single group, to the same estimates.

Why not resampling seeds. A percentile bootstrap that resamples three seeds cannot reach 95%: its
resampled means lie within [min, max] of the seed means, which misses the true mean with probability
2·(1/2)³ = 1/4, so it covers at most 75% when seed variance dominates (the simulation in
tests/test_two_level_stats.py measures it; `two_level_summary(interval="bootstrap")` keeps it for
that comparison). A sign-flip permutation test over three seed pairs has 2³ sign patterns and a
two-sided p-value of at least 2/8 = 0.25, so it can never reject at 0.05.

Ratio metrics (Σnum/Σden over items, macro means of them: `stats.pooled_value`) enter through their
linearisation, the delta method's influence values (Deville 1999, "Variance estimation for complex
statistics and estimators: linearization and residual techniques", Survey Methodology 25): a table
of per-cell values whose mean is the pooled value and whose variance is the pooled value's to first
order. For a plain mean the linearisation is the values themselves.

Arrays are [seeds, items] of per-item values, or num and den [seeds, items] or [seeds, items,
constituents] for a pooled metric (`item_metrics.pooled_parts` has the cell axis last: move it first).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import t as student_t

from distillbench.core.stats import (BOOTSTRAP_RESAMPLES, bootstrap_ci, chunk_sizes, mcnemar_exact,
                                     paired_difference, paired_pooled_difference, pooled_summary, pooled_value,
                                     resample_counts)

RESAMPLE_FACTOR = 20
SEEDS_AND_ITEMS = "seeds and items"
ITEMS_ONLY = "items (conditional on the trained models)"
MIXED = "seeds and items (conditional on the one-seed row's model)"

Term = tuple[float, float, float]  # (coefficient, mean square, degrees of freedom)


def resamples_for(comparisons: int, alpha: float = 0.05) -> int:
    """Monte Carlo resamples for a table of m = `comparisons` tests at family level α: ⌈20·m/α⌉.

    A resampling p-value is at least 1/(R+1) (Phipson & Smyth 2010, "Permutation p-values should never
    be zero", Stat. Appl. Genet. Mol. Biol. 9(1)); with R = 20·m/α that floor lies 20 times below α/m,
    the smallest threshold Holm's procedure applies, and the Monte Carlo error of a p-value there,
    √(p/R) = α/(m·√20), is under a quarter of it."""
    return math.ceil(RESAMPLE_FACTOR * max(1, comparisons) / alpha)


def p_bound(p: float, resamples: int | None) -> dict:
    """{"p_floor", "p_at_floor"}: a test from R resamples gives no p-value below 1/(R+1) (no resample as
    extreme as the data), so one at that floor says only that p is at most about 1/(R+1), for renderers
    to print as "p < 1/(R+1)". resamples None: an exact or analytic test, floor 0."""
    if resamples is None:
        return {"p_floor": 0.0, "p_at_floor": False}
    floor = 1.0 / (resamples + 1)
    return {"p_floor": floor, "p_at_floor": bool(p <= floor * (1 + 1e-9))}


# The table of a row and the variance of its mean.

def _table(num, den=None) -> tuple[np.ndarray, np.ndarray]:
    """num, den as [seeds, items, constituents]; den None is a plain mean (den = 1)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.ones_like(num) if den is None else np.asarray(den, dtype=np.float64)
    if num.ndim == 2:
        num, den = num[..., None], den[..., None]
    if num.ndim != 3 or num.shape != den.shape:
        raise ValueError(f"expected num and den of one shape [seeds, items(, constituents)], got {num.shape} "
                         f"and {den.shape}")
    return num, den


def linearized(num, den=None) -> tuple[float, np.ndarray]:
    """(V, ℓ) of a row: its pooled value V = mean_k Σ_si num_sik / Σ_si den_sik and the per-cell
    linearisation ℓ_si = V + mean_k (num_sik − r_k·den_sik) / d̄_k, with r_k = Σnum_k/Σden_k and d̄_k the
    mean of den_k (a constituent with Σden_k = 0 counts 0, as its ratio does). mean(ℓ) = V; for a plain
    mean ℓ is the values."""
    num, den = _table(num, den)
    seeds, items, _ = num.shape
    num_sums, den_sums = num.sum(axis=(0, 1)), den.sum(axis=(0, 1))
    ratio = np.divide(num_sums, den_sums, out=np.zeros(num_sums.shape), where=den_sums != 0)
    inverse_mean_den = np.divide(seeds * items, den_sums, out=np.zeros(den_sums.shape), where=den_sums != 0)
    value = float(pooled_value(num_sums, den_sums))
    return value, value + ((num - ratio * den) * inverse_mean_den).mean(axis=-1)


def _seed_terms(table: np.ndarray) -> list[Term]:
    """(MS_seed − MS_res)/(RC) of a [seeds, items] table: its seed part σ_s²/R (the residual is taken out
    because the item term counts it already). None for one seed, and none where MS_seed ≤ MS_res: a
    negative estimate of σ_s² is truncated at zero (Searle, Casella & McCulloch 1992)."""
    seeds, items = table.shape
    if seeds == 1:
        return []
    seed_means = table.mean(axis=1)
    terms = [(1 / (seeds * items), items * float(np.var(seed_means, ddof=1)), seeds - 1)]
    if items > 1:
        residual = table - seed_means[:, None] - table.mean(axis=0)[None, :] + table.mean()
        df = (seeds - 1) * (items - 1)
        terms.append((-1 / (seeds * items), float(np.sum(residual**2)) / df, df))
    return terms if sum(c * ms for c, ms, _ in terms) > 0 else []


def _item_terms(item_means: np.ndarray) -> list[Term]:
    """s²/C of the items' means over seeds: σ_i²/C plus each row's σ_e²/(RC)."""
    items = item_means.size
    return [(1 / items, float(np.var(item_means, ddof=1)), items - 1)] if items > 1 else []


def _satterthwaite(terms: list[Term]) -> tuple[float, float]:
    """(variance, df) of Σ c·MS: df = (Σ c·MS)² / Σ (c·MS)²/df (Satterthwaite 1946); (0, ∞) for none."""
    variance = sum(c * ms for c, ms, _ in terms)
    if variance <= 0:
        return 0.0, math.inf
    return variance, variance**2 / sum((c * ms) ** 2 / df for c, ms, df in terms)


def _interval(center: float, variance: float, df: float, level: float) -> list[float]:
    half = student_t.ppf((1 + level) / 2, df) * math.sqrt(variance) if variance > 0 else 0.0
    return [center - half, center + half]


# A row.

def two_level_bootstrap_ci(num, den=None, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                           level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of a row's pooled value from the two-level bootstrap: each resample draws the
    R seeds with replacement (counts w_s) and, once for all of them, the C items (counts v_i), and
    recomputes mean_k Σ w_s v_i num_sik / Σ w_s v_i den_sik. Items are drawn once because they are
    crossed with the seeds (every seed scored the same items): Owen's (2007) pigeonhole bootstrap
    (Ann. Appl. Stat. 1(2)), rather than items within each seed as for nested data (Field & Welsh 2007,
    JRSS B 69(3); Saravanan, Berman & Sober 2020, NBDT 3(5)). Under-covers with few seeds (module doc)."""
    num, den = _table(num, den)
    seeds, items, width = num.shape
    rng = np.random.default_rng(seed)
    parts = np.concatenate([num, den], axis=-1).transpose(1, 0, 2).reshape(items, seeds * 2 * width)
    sums = []
    for size in chunk_sizes(resamples, items * seeds):
        per_seed = (resample_counts(rng, items, size) @ parts).reshape(size, seeds, 2 * width)
        sums.append(np.einsum("bs,bsk->bk", resample_counts(rng, seeds, size), per_seed))
    sums = np.concatenate(sums)
    tail = (1 - level) / 2
    low, high = np.quantile(pooled_value(sums[:, :width], sums[:, width:]), [tail, 1 - tail])
    return (float(low), float(high))


def two_level_summary(num, den=None, level: float = 0.95, interval: str = "t",
                      resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """{"mean", "ci95", "n", "seeds", "se", "df", "variance_from", "interval"} of a row over seeds × items.

    mean: the pooled value over all seeds and items (for a plain metric the mean; the same number as
    averaging each item over seeds first). ci95 (at `level`): mean ± t_{df}·se with se² the crossed
    model's Var(ȳ) of the linearised table (`interval="t"`), or the two-level bootstrap's percentile
    interval (`interval="bootstrap"`, `two_level_bootstrap_ci`). n: items. One seed: today's interval
    over items (`stats.bootstrap_ci`, or `stats.pooled_summary` with den), conditional on that model."""
    pooled = den is not None
    num, den = _table(num, den)
    seeds, items, _ = num.shape
    if items == 0:
        return {"mean": float("nan"), "ci95": [float("nan"), float("nan")], "n": 0, "seeds": seeds}
    if seeds == 1:
        values = num[0, :, 0]
        summary = (pooled_summary(num[0], den[0], resamples, seed, level) if pooled else
                   {"mean": float(values.mean()), "ci95": list(bootstrap_ci(values, resamples, seed, level)),
                    "n": int(items)})
        return {**summary, "seeds": 1, "se": None, "df": None, "variance_from": ITEMS_ONLY,
                "interval": "bootstrap over items"}
    value, cells = linearized(num, den)
    variance, df = _satterthwaite(_seed_terms(cells) + _item_terms(cells.mean(axis=0)))
    if interval == "bootstrap":
        ci = list(two_level_bootstrap_ci(num, den, resamples, seed, level))
    elif interval == "t":
        ci = _interval(value, variance, df, level)
    else:
        raise ValueError(f"interval must be 't' or 'bootstrap', not {interval!r}")
    return {"mean": value, "ci95": ci, "n": int(items), "seeds": int(seeds), "se": math.sqrt(variance),
            "df": df, "variance_from": SEEDS_AND_ITEMS, "interval": interval}


# Two rows.

def _one_model(num_a, den_a, num_b, den_b, pooled: bool, binary: bool, resamples: int, seed: int) -> dict:
    """Today's item-level test of two one-seed rows, labelled conditional on their trained models."""
    if pooled:
        result = paired_pooled_difference(num_a[0], den_a[0], num_b[0], den_b[0], resamples, seed)
    elif binary:
        result, resamples = mcnemar_exact(num_a[0, :, 0], num_b[0, :, 0]), None
    else:
        result = paired_difference(num_a[0, :, 0], num_b[0, :, 0], resamples, seed)
    return {**result, **p_bound(result["p"], resamples), "seeds": [1, 1], "se": None, "df": None,
            "variance_from": ITEMS_ONLY}


def two_level_difference(num_a, num_b, den_a=None, den_b=None, *, binary: bool = False,
                         paired_seeds: bool = False, resamples: int = 10_000, seed: int = 0,
                         level: float = 0.95) -> dict:
    """a − b over seeds × items, items paired by position (the same item ids in the same order):
    {"diff", "ci95", "p", "n", "seeds", "se", "df", "variance_from", "test", "p_floor", "p_at_floor"}.

    diff: the difference of the rows' pooled values. The test is a t-test of the crossed model: se² =
    Σ_rows (MS_seed − MS_res)/(R·C) + s²(g)/C, with g_i the difference of the rows' item means over
    seeds (linearised tables), p the two-sided t tail at Satterthwaite's df, ci95 diff ± t_{df}·se.
    The rows' seeds are independent training runs, so each row's seed variance is its own (any number
    of seeds each); `paired_seeds` instead takes the table of differences seed by seed (seed s of a
    against seed s of b, equal counts), which pays off only when the seeds' effects correlate strongly
    across methods: with three seeds it halves the seed df (2 instead of about 4) and needs a
    correlation above about 0.6 to win. A one-seed row has no seed term: the test is conditional on
    its model. Binary (0/1) values take the same t-test, whose seed and item means are averages.

    Two one-seed rows: today's item-level test (`stats.paired_pooled_difference` with den,
    `stats.mcnemar_exact` when `binary`, else `stats.paired_difference`, with `resamples`), its
    variance_from "items (conditional on the trained models)". p_floor is 1/(resamples+1) for those
    permutation tests and 0 for exact and analytic ones; p_at_floor says the p-value is that bound."""
    pooled = den_a is not None or den_b is not None
    (num_a, den_a), (num_b, den_b) = _table(num_a, den_a), _table(num_b, den_b)
    if num_a.shape[1:] != num_b.shape[1:]:
        raise ValueError(f"rows have different items or constituents: {num_a.shape[1:]} and {num_b.shape[1:]}")
    seeds_a, items, _ = num_a.shape
    seeds_b = num_b.shape[0]
    if items == 0:
        raise ValueError("no paired items")
    if seeds_a == seeds_b == 1:
        return _one_model(num_a, den_a, num_b, den_b, pooled, binary, resamples, seed)
    if paired_seeds and seeds_a != seeds_b:
        raise ValueError(f"paired_seeds needs equal seed counts, got {seeds_a} and {seeds_b}")
    (value_a, cells_a), (value_b, cells_b) = linearized(num_a, den_a), linearized(num_b, den_b)
    item_means = cells_a.mean(axis=0) - cells_b.mean(axis=0)
    seed_terms = (_seed_terms(cells_a - cells_b) if paired_seeds
                  else _seed_terms(cells_a) + _seed_terms(cells_b))
    variance, df = _satterthwaite(seed_terms + _item_terms(item_means))
    diff = value_a - value_b
    p = float(2 * student_t.sf(abs(diff) / math.sqrt(variance), df)) if variance > 0 else float(diff == 0)
    return {"diff": diff, "ci95": _interval(diff, variance, df, level), "p": p, "n": int(items),
            "seeds": [int(seeds_a), int(seeds_b)], "se": math.sqrt(variance), "df": df,
            "variance_from": SEEDS_AND_ITEMS if min(seeds_a, seeds_b) > 1 else MIXED,
            "test": "two-level t (seeds × items, Satterthwaite df)" + (", seeds paired" if paired_seeds else ""),
            **p_bound(p, None)}
