import numpy as np
import pytest

from distillbench.core.stats import bootstrap_ci, mcnemar_exact, paired_difference, summarize


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
    from distillbench.leaderboards.aggregate import holm

    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_a_rows_items_are_averaged_over_seeds_before_the_ci():
    # the same test item under three seeds is one sample, not three: n and the CI are those of the items
    from distillbench.core.item_metrics import per_cell_values, summarize_metrics

    rng = np.random.default_rng(0)
    items = rng.integers(0, 2, 200).astype(float).tolist()
    flipped = [1.0 - v if i % 10 == 0 else v for i, v in enumerate(items)]
    values = {"m": {str(i): np.array(seeds) for i, seeds in enumerate(zip(items, items, flipped))}}
    row = summarize_metrics(values, {})["m"]
    expected = summarize(np.mean([items, items, flipped], axis=0))
    assert row["n"] == 200 and row["ci95"] == expected["ci95"] and row["mean"] == pytest.approx(expected["mean"])
    per_seed = per_cell_values(values, {})["m"]
    assert per_seed[2] != per_seed[0]
