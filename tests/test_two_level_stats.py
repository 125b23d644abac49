"""Intervals and paired tests over seeds × items (issue #23, item 1): a simulation of null comparisons
with seed-to-seed variance, where the two-level test holds its level and today's item-only test does
not, a power check, the row intervals' coverage, and small cases worked by hand."""

import math

import numpy as np
import pytest
from scipy.stats import t as student_t

from distillbench.core.stats import mcnemar_exact, paired_difference, paired_pooled_difference, pooled_summary, summarize
from distillbench.core.two_level import (ITEMS_ONLY, MIXED, SEEDS_AND_ITEMS, linearized, p_bound, resamples_for,
                                         two_level_bootstrap_ci, two_level_difference,
                                         two_level_summary)

# The simulation: three seeds per method (as most recipes run), 200 items. An item's value is its difficulty
# (shared by both methods) plus the method's own item effect, the seed's effect (the trained model) and
# noise. The two methods are equal in expectation; seed effects are independent across methods.
SEEDS, ITEMS = 3, 200
SEED_SD, DIFFICULTY_SD, INTERACTION_SD, NOISE_SD = 0.1, 1.0, 0.3, 1.0
NULLS = 1000         # null comparisons for the two-level test (analytic: about a millisecond each)
ITEM_ONLY_NULLS = 400  # the first of them for today's item-level permutation test (resampled: slower)
ITEM_ONLY_RESAMPLES = 500
POWER_RUNS, EFFECT = 400, 5 * SEED_SD  # power at an effect of five seed SDs
COVERAGE_ROWS = 400
ALPHA = 0.05


def simulate(rng, count: int, effect: float = 0.0, seed_sd: float = SEED_SD) -> tuple[np.ndarray, np.ndarray]:
    """`count` pairs of [seeds, items] tables (a, b), a's mean shifted by `effect`."""
    difficulty = rng.normal(0, DIFFICULTY_SD, (count, 1, ITEMS))

    def row():
        return (difficulty + rng.normal(0, INTERACTION_SD, (count, 1, ITEMS))
                + rng.normal(0, seed_sd, (count, SEEDS, 1)) + rng.normal(0, NOISE_SD, (count, SEEDS, ITEMS)))

    return row() + effect, row()


@pytest.fixture(scope="module")
def nulls():
    return simulate(np.random.default_rng(23), NULLS)


def rejections(a, b, test) -> float:
    return float(np.mean([test(x, y)["p"] < ALPHA for x, y in zip(a, b)]))


def test_the_two_level_test_holds_its_level_under_seed_variance(nulls):
    rate = rejections(*nulls, two_level_difference)
    assert 0.03 <= rate <= 0.07, rate


def test_the_item_only_test_on_seed_averaged_items_is_anti_conservative(nulls):
    a, b = (tables[:ITEM_ONLY_NULLS] for tables in nulls)
    rate = rejections(a, b, lambda x, y: paired_difference(x.mean(0), y.mean(0), resamples=ITEM_ONLY_RESAMPLES))
    assert rate > 0.15, rate


def test_the_two_level_test_has_power_at_five_seed_sds():
    a, b = simulate(np.random.default_rng(5), POWER_RUNS, EFFECT)
    assert rejections(a, b, two_level_difference) >= 0.8


def coverage(rows, interval) -> float:
    """How often a row's interval covers its true mean, 0 (items and seeds are drawn afresh for each row)."""
    return float(np.mean([low <= 0 <= high for low, high in map(interval, rows)]))


def test_a_rows_t_interval_covers_and_the_seed_bootstrap_does_not_when_seeds_dominate(nulls):
    t_interval = lambda row: two_level_summary(row)["ci95"]  # noqa: E731
    bootstrap = lambda row: two_level_bootstrap_ci(row, resamples=500)  # noqa: E731
    # In the simulation above the items' part dominates a row's variance (σ_item²/C = 0.0055 against
    # σ_seed²/R = 0.0033): both intervals cover.
    rows = nulls[0][:COVERAGE_ROWS]
    assert 0.93 <= coverage(rows, t_interval) <= 0.98 and coverage(rows, bootstrap) >= 0.93
    # With a seed SD of 1 the seeds' part dominates (0.33): the bootstrap over three seeds nears its 75%.
    rows = simulate(np.random.default_rng(9), COVERAGE_ROWS, seed_sd=1.0)[0]
    assert 0.93 <= coverage(rows, t_interval) <= 0.98 and coverage(rows, bootstrap) < 0.85


OTHER_NULLS = 600  # null comparisons of a binary metric and of a ratio of sums


def chances(rng, logits):
    """A method's chance of getting each item right, per seed: the item's logit (shared), the method's own
    item effect and the seed's effect, [count, seeds, items]."""
    count = logits.shape[0]
    shift = logits + rng.normal(0, 0.3, (count, 1, ITEMS)) + rng.normal(0, 0.3, (count, SEEDS, 1))
    return 1 / (1 + np.exp(-shift))


def binary_rate() -> float:
    rng = np.random.default_rng(7)
    logits = rng.normal(0, 1, (OTHER_NULLS, 1, ITEMS))
    a, b = ((rng.random((OTHER_NULLS, SEEDS, ITEMS)) < chances(rng, logits)).astype(float) for _ in range(2))
    return rejections(a, b, two_level_difference)


def ratio_rate() -> float:
    """A ratio of sums: each item has 1 to 5 mentions (den), of which each seed gets a share right (num)."""
    rng = np.random.default_rng(8)
    logits = rng.normal(0, 1, (OTHER_NULLS, 1, ITEMS))
    den = rng.integers(1, 6, (OTHER_NULLS, 1, ITEMS)).repeat(SEEDS, axis=1)
    a, b = (rng.binomial(den, chances(rng, logits)).astype(float) for _ in range(2))
    return float(np.mean([two_level_difference(x, y, den_a=d, den_b=d)["p"] < ALPHA
                          for x, y, d in zip(a, b, den.astype(float))]))


def test_a_binary_metric_holds_its_level():
    assert 0.03 <= binary_rate() <= 0.07


def test_a_ratio_metric_holds_its_level():
    assert 0.03 <= ratio_rate() <= 0.07


# Small cases.

def test_resamples_scale_with_the_comparisons_and_the_floor_is_a_bound():
    assert resamples_for(1) == 400 and resamples_for(30) == 12_000 and resamples_for(30, alpha=0.01) == 60_000
    assert p_bound(1 / 401, 400) == {"p_floor": 1 / 401, "p_at_floor": True}
    assert p_bound(0.2, 400)["p_at_floor"] is False
    assert p_bound(0.0, None) == {"p_floor": 0.0, "p_at_floor": False}  # exact or analytic: no floor


def test_a_two_by_three_table_by_hand():
    # seed means 2, 4; item means 2, 3, 4; no residual: MS_seed = 6, MS_item = 2, MS_res = 0, so
    # Var = (6 + 2)/6 = 4/3 and df = (4/3)² / (1²/1 + (1/3)²/2) = 32/19.
    summary = two_level_summary([[1, 2, 3], [3, 4, 5]])
    assert summary["mean"] == 3 and summary["se"] == pytest.approx(math.sqrt(4 / 3))
    assert summary["df"] == pytest.approx(32 / 19)
    half = student_t.ppf(0.975, 32 / 19) * math.sqrt(4 / 3)
    assert summary["ci95"] == pytest.approx([3 - half, 3 + half])
    assert summary["variance_from"] == SEEDS_AND_ITEMS and summary["n"] == 3 and summary["seeds"] == 2


def test_three_seeds_apart_widen_the_interval_to_the_seeds():
    # The row: its seeds scored 2.78, 1.54 and 1.51, and the interval over items alone was
    # [1.88, 2.01]. Over seeds × items it must reach past all three.
    rng = np.random.default_rng(0)
    table = np.array([[2.78], [1.54], [1.51]]) + rng.normal(0, 0.3, (3, 400))
    table -= table.mean(axis=1, keepdims=True) - np.array([[2.78], [1.54], [1.51]])
    low, high = two_level_summary(table)["ci95"]
    items_only = summarize(table.mean(axis=0))["ci95"]
    assert low < 1.51 and high > 2.78 and (high - low) > 10 * (items_only[1] - items_only[0])


def test_one_item_is_a_t_interval_over_the_seeds():
    seeds = np.array([[0.5], [0.7], [0.6], [0.9]])
    summary = two_level_summary(seeds)
    half = student_t.ppf(0.975, 3) * seeds.std(ddof=1) / 2
    assert summary["df"] == pytest.approx(3) and summary["ci95"] == pytest.approx([0.675 - half, 0.675 + half])


def test_one_seed_keeps_todays_item_level_interval_and_tests():
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 2, (2, 1, 120)).astype(float)
    summary = two_level_summary(a)
    assert summary["ci95"] == summarize(a[0])["ci95"] and summary["variance_from"] == ITEMS_ONLY
    plain = two_level_difference(a, b, resamples=999)
    assert plain["p"] == paired_difference(a[0], b[0], resamples=999)["p"] and plain["p_floor"] == 1 / 1000
    assert plain["variance_from"] == ITEMS_ONLY and plain["seeds"] == [1, 1]
    binary = two_level_difference(a, b, binary=True)
    assert binary["p"] == mcnemar_exact(a[0], b[0])["p"] and binary["p_floor"] == 0.0
    den = rng.integers(1, 4, (1, 120, 2)).astype(float)
    num_a, num_b = (np.minimum(den, rng.integers(0, 4, den.shape)) for _ in range(2))
    pooled = two_level_difference(num_a, num_b, den_a=den, den_b=den, resamples=999)
    assert pooled["p"] == paired_pooled_difference(num_a[0], den[0], num_b[0], den[0], resamples=999)["p"]
    assert two_level_summary(num_a, den)["ci95"] == pooled_summary(num_a[0], den[0])["ci95"]


def test_a_one_seed_row_against_a_three_seed_row_is_conditional_on_its_model():
    rng = np.random.default_rng(4)
    a, b = rng.normal(0, 1, (3, 50)) + np.array([[0.0], [0.5], [1.0]]), rng.normal(0, 1, (1, 50))
    result = two_level_difference(a, b)
    seed_part = 50 * a.mean(axis=1).var(ddof=1) - ((a - a.mean(1, keepdims=True) - a.mean(0) + a.mean())**2).sum() / 98
    assert result["se"] ** 2 == pytest.approx(seed_part / 150 + (a.mean(0) - b[0]).var(ddof=1) / 50)
    assert result["variance_from"] == MIXED and result["seeds"] == [3, 1]


def test_all_equal_values_give_a_point_interval():
    assert two_level_summary(np.full((3, 10), 0.4))["ci95"] == pytest.approx([0.4, 0.4])
    same = two_level_difference(np.ones((3, 10)), np.ones((3, 10)))
    assert same["p"] == 1.0 and same["ci95"] == [0.0, 0.0]
    shifted = two_level_difference(np.full((3, 10), 0.5), np.full((3, 10), 0.25))
    assert shifted["p"] == 0.0 and shifted["diff"] == 0.25


def test_ratio_metrics_pool_over_seeds_and_items():
    rng = np.random.default_rng(5)
    den = rng.integers(0, 4, (3, 80, 2)).astype(float)
    num = np.minimum(den, rng.integers(0, 4, den.shape))
    value, cells = linearized(num, den)
    expected = np.mean(num.sum(axis=(0, 1)) / den.sum(axis=(0, 1)))
    assert value == pytest.approx(expected) and cells.mean() == pytest.approx(value)
    # the same value as today's row (items averaged over seeds first, then pooled)
    summary = two_level_summary(num, den)
    assert summary["mean"] == pytest.approx(pooled_summary(num.mean(0), den.mean(0))["mean"])
    assert summary["ci95"][0] < value < summary["ci95"][1]
    # a plain mean is the ratio metric with den = 1
    values = rng.normal(0, 1, (3, 80))
    assert linearized(values)[1] == pytest.approx(values)
    other = rng.normal(0, 1, (3, 80))
    as_ratio = two_level_difference(values, other, den_a=np.ones_like(values), den_b=np.ones_like(other))
    assert as_ratio["p"] == pytest.approx(two_level_difference(values, other)["p"])


def test_paired_seeds_test_the_table_of_differences():
    rng = np.random.default_rng(6)
    a, b = rng.normal(0, 1, (2, 3, 60))
    paired = two_level_difference(a, b, paired_seeds=True)
    of_differences = two_level_summary(a - b)
    assert paired["se"] == pytest.approx(of_differences["se"]) and paired["df"] == pytest.approx(of_differences["df"])
    with pytest.raises(ValueError):
        two_level_difference(a, b[:2], paired_seeds=True)
    with pytest.raises(ValueError):
        two_level_difference(a, b[:, :50])


def test_the_bootstrap_interval_is_deterministic_and_brackets_the_mean():
    table = np.random.default_rng(8).normal(0, 1, (3, 100))
    interval = two_level_bootstrap_ci(table)
    assert interval == two_level_bootstrap_ci(table) and interval[0] < table.mean() < interval[1]
    summary = two_level_summary(table, interval="bootstrap")
    assert summary["ci95"] == list(interval) and summary["interval"] == "bootstrap"
