"""Ratio-of-sums and macro-mean metrics (POPE's F1, CHAIRi, averages over splits) through the leaderboard:
the pooled value, its bootstrap CI, the paired test that swaps (numerator, denominator) per item,
the regression gate, and the components kept out of the tables but in the per-item records."""

import json
from dataclasses import dataclass

import numpy as np
import pytest

from distillbench.benchmarks.base import Benchmark, ItemScore
from distillbench.cli.main import main
from distillbench.core.plan import BenchmarkRun, Cell, Plan
from distillbench.core.store import Store
from distillbench.leaderboards.aggregate import build_leaderboard, head_to_head
from distillbench.leaderboards.render import to_csv, to_markdown, write_all
from distillbench.core.stats import (paired_difference, paired_pooled_difference, pooled_summary,
                                             pooled_value, summarize)

ITEMS, BENCH_KEY = 300, "k-yes-no"


@dataclass(frozen=True)
class YesNo(Benchmark):
    """A yes/no detector scored as POPE is, in two groups of items: F1 and precision pooled over items."""

    binary_metrics = ("accuracy",)
    ratio_metrics = {f"{g}/{m}": (f"{g}/{m}.num", f"{g}/{m}.den") for g in ("a", "b") for m in ("f1", "precision")}
    macro_metrics = {"average/f1": ("a/f1", "b/f1"), "average/accuracy": ("a/accuracy", "b/accuracy")}

    def items(self):
        return [{"id": f"{'ab'[i % 2]}/{i}", "group": "ab"[i % 2], "label": i % 3 != 0} for i in range(ITEMS)]

    def predict(self, model, tokenizer, items, *, batch_size):
        raise AssertionError("this test benchmark is scored from fixed outputs; nothing should ask it to predict")

    def score(self, item, output):
        yes, gold = output == "yes", item["label"]
        tp, fp, fn = int(yes and gold), int(yes and not gold), int(not yes and gold)
        group = item["group"]
        return ItemScore({"accuracy": float(yes == gold), f"{group}/accuracy": float(yes == gold),
                          f"{group}/f1.num": 2.0 * tp, f"{group}/f1.den": 2.0 * tp + fp + fn,
                          f"{group}/precision.num": float(tp), f"{group}/precision.den": float(tp + fp)})


def answers(error_rate: float, seed: int) -> list[str]:
    """Outputs of a detector that flips each gold label with probability error_rate."""
    rng = np.random.default_rng(seed)
    items = YesNo().items()
    return ["yes" if item["label"] != (rng.random() < error_rate) else "no" for item in items]


ROWS = {"good": [(0.05, 1), (0.05, 2)], "bad": [(0.35, 3)], "good-again": [(0.05, 4)]}  # row -> (error, seed) per cell


def f1_of(outputs: list[list[str]], group: str | None = None) -> float:
    """Pooled F1 with each item's counts averaged over the cells first (what the leaderboard shows)."""
    items = YesNo().items()
    num = den = 0.0
    for index, item in enumerate(items):
        if group and item["group"] != group:
            continue
        scores = [YesNo().score(item, cell[index]).values for cell in outputs]
        num += np.mean([s[f"{item['group']}/f1.num"] for s in scores])
        den += np.mean([s[f"{item['group']}/f1.den"] for s in scores])
    return num / den


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ratio-run")
    benchmark = YesNo()
    store = Store(directory / "results.sqlite")
    cells, outputs = [], {}
    for label, specs in ROWS.items():
        outputs[label] = []
        for index, (error, seed) in enumerate(specs):
            key = f"{label}-{index}"
            cells.append(Cell(label, "method", "pocket:student-init", key, method_name=label, seed=index))
            store.mark_cell(key, run_id="r", label=label, kind="method", method=label, params={}, seed=index,
                            status="ready")
            replies = answers(error, seed)
            outputs[label].append(replies)
            scored = [{"id": item["id"], "output": reply, "scores": benchmark.score(item, reply).values, "reason": ""}
                      for item, reply in zip(benchmark.items(), replies)]
            store.save_evaluation(key, BENCH_KEY, "yes-no", benchmark.protocol(), 1.0, scored, {})
    plan = Plan(cells, [BenchmarkRun("yes-no", benchmark, BENCH_KEY)])
    board = build_leaderboard(store, plan, {"name": "ratio"})
    store.close()
    write_all(board, directory)
    return directory, board, outputs


def test_the_leaderboard_value_is_the_pooled_ratio_with_a_ci_around_it(run):
    _, board, outputs = run
    rows = {row["row"]: row for row in board["rows"]}
    for label in ROWS:
        metrics = rows[label]["metrics"]
        for group in ("a", "b"):
            value = metrics[f"yes-no/{group}/f1"]
            assert value["mean"] == pytest.approx(f1_of(outputs[label], group))
            assert value["ci95"][0] < value["mean"] < value["ci95"][1] and value["n"] == ITEMS // 2
        # The macro mean is the plain mean of the two groups' pooled F1, not the F1 of all items pooled.
        average = metrics["yes-no/average/f1"]
        assert average["mean"] == pytest.approx((f1_of(outputs[label], "a") + f1_of(outputs[label], "b")) / 2)
        assert average["ci95"][0] < average["mean"] < average["ci95"][1] and average["n"] == ITEMS
        # A macro mean over plain per-item metrics: the mean of the two groups' accuracies.
        halves = [metrics[f"yes-no/{g}/accuracy"]["mean"] for g in ("a", "b")]
        assert metrics["yes-no/average/accuracy"]["mean"] == pytest.approx(sum(halves) / 2)
    # Two seeds: each seed's own pooled F1 is kept beside the row's.
    spread = rows["good"]["seed_spread"]["yes-no/a/f1"]["per_seed"]
    assert spread == {str(i): pytest.approx(f1_of([outputs["good"][i]], "a")) for i in range(2)}


def test_components_stay_out_of_the_tables_but_in_the_item_records(run):
    directory, board, _ = run
    names = {name for row in board["rows"] for name in row["metrics"]}
    assert "yes-no/a/f1" in names and not [n for n in names if n.endswith((".num", ".den"))]
    assert ".num" not in to_markdown(board) and ".den" not in to_csv(board)
    assert "yes-no/a/f1" in to_csv(board) and "pooled: a/f1, a/precision" in to_markdown(board)
    store = Store(directory / "results.sqlite")
    try:
        record = store.item_records("good-0", BENCH_KEY, limit=1)[0]
    finally:
        store.close()
    assert {"a/f1.num", "a/f1.den"} <= set(record["scores"])


def test_head_to_head_finds_a_clear_difference_and_not_a_null_one(run):
    directory, board, outputs = run
    store = Store(directory / "results.sqlite")
    try:
        comparisons = {(c["row"], c["metric"]): c for c in head_to_head(store, board, "good")}
    finally:
        store.close()
    worse = comparisons[("bad", "yes-no/a/f1")]
    assert worse["test"].startswith("two-level t") and worse["p"] < 0.001 and worse["significant"]
    assert worse["diff"] == pytest.approx(f1_of(outputs["bad"], "a") - f1_of(outputs["good"], "a"))
    assert worse["ci95"][1] < 0
    for metric in ("yes-no/a/f1", "yes-no/average/f1", "yes-no/b/precision"):
        same = comparisons[("good-again", metric)]
        assert same["p"] > 0.05 and not same["significant"] and same["ci95"][0] < 0 < same["ci95"][1]
    assert comparisons[("bad", "yes-no/accuracy")]["test"].startswith("two-level t")  # "good" has two seeds
    assert not [m for (_, m) in comparisons if m.endswith((".num", ".den"))]


def test_the_regression_gate_pairs_ratio_metrics(run, tmp_path, capsys):
    directory, board, _ = run
    # The "bad" row's items as a new run of the "good" row: its F1 fell, significantly.
    worse = json.loads(json.dumps(board))
    rows = {row["row"]: row for row in worse["rows"]}
    rows["good"].update(cells=rows["bad"]["cells"], metrics=rows["bad"]["metrics"])
    new = tmp_path / "new"
    new.mkdir()
    (new / "leaderboard.json").write_text(json.dumps(worse))
    (new / "results.sqlite").write_bytes((directory / "results.sqlite").read_bytes())
    assert main(["compare", str(new), str(directory)]) == 1
    out = capsys.readouterr().out
    assert "ratio of sums" in out and "REGRESSION" in out
    assert main(["compare", str(directory), str(directory)]) == 0


def test_pooled_statistics_reduce_to_the_plain_mean():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1, 1, 120), rng.normal(0.8, 1, 120)
    ones = np.ones_like(a)
    plain, pooled = summarize(a), pooled_summary(a, ones)
    assert pooled["mean"] == pytest.approx(plain["mean"]) and pooled["n"] == plain["n"]
    assert pooled["ci95"] == pytest.approx(plain["ci95"], abs=0.05)
    # Swapping (value, 1) between rows is the sign flip: the same difference, CI and p up to Monte Carlo error.
    flip, swap = paired_difference(a, b), paired_pooled_difference(a, ones, b, ones)
    assert swap["diff"] == pytest.approx(flip["diff"])
    assert swap["ci95"] == pytest.approx(flip["ci95"], abs=0.05) and swap["p"] == pytest.approx(flip["p"], abs=0.01)


def test_pooled_value_is_zero_where_the_denominator_is():
    assert pooled_value([3.0, 0.0], [4.0, 0.0]) == pytest.approx(0.375)  # mean(3/4, 0)
    assert pooled_summary([0.0, 0.0], [0.0, 0.0])["mean"] == 0.0
    with pytest.raises(ValueError, match="no paired items"):
        paired_pooled_difference(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))
