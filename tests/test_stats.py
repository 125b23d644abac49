import numpy as np
import pytest

from distillbench.core.stats import bootstrap_ci, mcnemar_exact, paired_difference, summarize
from distillbench.leaderboards.aggregate import holm


def test_bootstrap_ci_brackets_the_mean_and_is_deterministic():
    values = np.random.default_rng(0).random(200)
    low, high = bootstrap_ci(values)
    assert low < values.mean() < high and high - low < 0.2
    assert bootstrap_ci(values) == (low, high)
    assert summarize([1, 1, 1])["ci95"] == [1.0, 1.0]


def test_mcnemar_exact_on_a_textbook_case():
    # 10 discordant pairs, all favouring a: p = 2 * 0.5**10
    a = [1] * 10 + [1] * 5 + [0] * 5
    b = [0] * 10 + [1] * 5 + [0] * 5
    result = mcnemar_exact(a, b)
    assert result["only_a"] == 10 and result["only_b"] == 0
    assert result["p"] == pytest.approx(2 * 0.5**10)
    assert mcnemar_exact(a, a)["p"] == 1.0


def test_paired_difference_detects_a_shift_and_not_noise():
    rng = np.random.default_rng(1)
    base = rng.normal(5, 2, 80)
    shifted = paired_difference(base + 0.5 + rng.normal(0, 0.3, 80), base)
    assert shifted["p"] < 0.01 and shifted["ci95"][0] > 0
    same = paired_difference(base + rng.normal(0, 0.3, 80), base)
    assert same["p"] > 0.05


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03])[0] == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9])[0] == pytest.approx([1.0, 1.0])


def test_a_holm_p_set_by_a_p_at_its_floor_is_a_bound():
    floor = 1 / 401
    adjusted, bounds = holm([floor, 0.2, floor / 2], [True, False, False])
    assert adjusted == pytest.approx([2 * floor, 0.2, 3 * floor / 2])
    # 3·(floor/2) is exact; 2·floor, set by the p at its floor, is only a bound; 0.2 sets its own value
    assert bounds == [True, False, False]


def test_a_rows_interval_spans_its_seeds_and_its_items():
    # the same test item under three seeds is one item, not three (n), and the interval is the two-level
    # one of the [seeds, items] table: it carries the seeds' spread, which averaging items over seeds hides
    from distillbench.core.item_metrics import per_cell_values, summarize_metrics
    from distillbench.core.two_level import SEEDS_AND_ITEMS, two_level_summary

    rng = np.random.default_rng(0)
    items = rng.integers(0, 2, 200).astype(float).tolist()
    flipped = [1.0 - v if i % 10 == 0 else v for i, v in enumerate(items)]
    values = {"m": {str(i): np.array(seeds) for i, seeds in enumerate(zip(items, items, flipped))}}
    row = summarize_metrics(values, {})["m"]
    expected = two_level_summary(np.array([items, items, flipped]))
    assert row["n"] == 200 and row["ci95"] == expected["ci95"] and row["mean"] == pytest.approx(expected["mean"])
    assert row["variance_from"] == SEEDS_AND_ITEMS and row["mean"] == pytest.approx(np.mean([items, items, flipped]))
    item_only = summarize(np.mean([items, items, flipped], axis=0))
    assert row["ci95"][1] - row["ci95"][0] > item_only["ci95"][1] - item_only["ci95"][0]
    per_seed = per_cell_values(values, {})["m"]
    assert per_seed[2] != per_seed[0]
