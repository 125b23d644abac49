"""Metric directions: higher, lower or none (bias measures with an ideal value), and how the regression
gate, the claims and the plots read a metric with no better direction."""

import json

import pytest

from distillbench.benchmarks.vlm.benchmarks import pope_yes_shares
from distillbench.core.registry import BENCHMARKS
from distillbench.core.store import Store
from distillbench.leaderboards.aggregate import direction, ideal
from distillbench.leaderboards.claims import Claim, _check
from distillbench.leaderboards.compare import compare
from distillbench.leaderboards.html import _reading

YES_RATIO, YES_DIFFERENCE = "pocket-pope/random/yes_ratio", "pocket-videohallucer/bias/yes_difference"


def _protocol(name: str, key: str = "key") -> dict:
    """A board's protocol entry for benchmark `name`, as `aggregate.build_leaderboard` writes it."""
    benchmark = BENCHMARKS.get(name)()
    return {"key": key, **benchmark.metric_definitions(), "ideal": benchmark.ideal_values()}


def _board(protocols: dict, metric: str, mean: float, half_width: float = 0.02, cells=("cell",)) -> dict:
    return {"schema_version": 1, "protocols": protocols,
            "rows": [{"row": "model", "kind": "method", "cells": list(cells), "status": "complete",
                      "metrics": {metric: {"mean": mean, "ci95": [mean - half_width, mean + half_width], "n": 400}}}]}


def _gate(tmp_path, protocols: dict, metric: str, baseline: float, new: float) -> dict:
    paths = []
    for name, mean in (("new", new), ("baseline", baseline)):
        paths.append(tmp_path / f"{name}-{mean}.json")
        paths[-1].write_text(json.dumps(_board(protocols, metric, mean)))
    [result] = compare(*paths)
    return result


def test_bias_measures_declare_no_direction_and_an_ideal_from_the_data():
    for name in ("pope", "pocket-pope"):
        assert "random/yes_ratio" in BENCHMARKS.get(name).no_direction
        assert "average/yes_ratio" in BENCHMARKS.get(name).metric_definitions()["no_direction"]
    for name in ("videohallucer", "pocket-videohallucer"):
        assert BENCHMARKS.get(name).metric_definitions()["no_direction"] == ["bias/yes_difference",
                                                                           "bias/no_difference"]
    items = [{"split": "random", "label": label} for label in ("yes", "yes", "yes", "no")]
    items += [{"split": "popular", "label": label} for label in ("yes", "no")]
    assert pope_yes_shares(items) == {"random/yes_ratio": 0.75, "popular/yes_ratio": 0.5, "average/yes_ratio": 0.625}
    pocket = BENCHMARKS.get("pocket-pope")(n=10)
    random_labels = [item["label"] == "yes" for item in pocket.items() if item["split"] == "random"]
    assert pocket.ideal_values()["random/yes_ratio"] == sum(random_labels) / len(random_labels)
    assert BENCHMARKS.get("pocket-videohallucer")().ideal_values() == {"bias/yes_difference": 0.0,
                                                                      "bias/no_difference": 0.0}


def test_direction_and_ideal_read_from_the_board():
    board = {"protocols": {"pocket-pope": _protocol("pocket-pope"), "pocket-chair": _protocol("pocket-chair")}}
    assert direction(board, YES_RATIO) == "none" and ideal(board, YES_RATIO) == 0.5
    assert direction(board, "pocket-pope/random/accuracy") == "higher"
    assert direction(board, "pocket-chair/chair_s") == "lower" and ideal(board, "pocket-chair/chair_s") is None
    assert _reading(board, YES_RATIO) == " (best near 0.5)" and _reading(board, "pocket-chair/chair_s") == (
        " (lower is better)")


@pytest.mark.parametrize("new, regression", [
    (0.60, True),   # higher, but further from the data's yes share: the old higher-is-better gate passed it
    (0.49, False),  # 0.03 lower (beyond the 0.02 tolerance), but closer to 0.5: the old gate failed it
    (0.45, True),   # 0.05 from the ideal where the baseline was 0.02: 0.03 further, beyond the tolerance
    (0.53, False),  # 0.01 further: within the tolerance
])
def test_the_gate_reads_pope_yes_ratio_as_distance_from_the_yes_share(tmp_path, new, regression):
    result = _gate(tmp_path, {"pocket-pope": _protocol("pocket-pope")}, YES_RATIO, 0.52, new)
    assert result["regression"] is regression
    assert result["basis"] == "mean vs tolerance; distance from ideal 0.5"


@pytest.mark.parametrize("new, regression", [(0.53, True), (0.47, True), (0.51, False), (0.49, False)])
def test_without_an_ideal_any_change_beyond_the_tolerance_is_a_regression(tmp_path, new, regression):
    protocols = {"bench": {"key": "key", "no_direction": ["lean"]}}
    result = _gate(tmp_path, protocols, "bench/lean", 0.50, new)
    assert result["regression"] is regression and result["basis"].endswith("; two-sided")


def _run(folder, protocols: dict, per_item: list[float]):
    """A run directory: its leaderboard and a store with one cell's per-item yes_difference."""
    folder.mkdir()
    store = Store(folder / "results.sqlite")
    store.save_evaluation("cell", "key", "pocket-videohallucer", {}, 1.0,
                          [{"id": f"obj_rel/{i}", "output": ["yes", "no"], "reason": "",
                            "scores": {"bias/yes_difference": value}} for i, value in enumerate(per_item)], {})
    store.close()
    (folder / "leaderboard.json").write_text(json.dumps(_board(protocols, YES_DIFFERENCE,
                                                               sum(per_item) / len(per_item))))
    return folder


@pytest.mark.parametrize("leaning, regression", [(0.5, True), (-0.5, True), (0.0, False)])
def test_the_gate_tests_videohallucer_yes_difference_two_sided_on_items(tmp_path, leaning, regression):
    protocols = {"pocket-videohallucer": _protocol("pocket-videohallucer")}
    baseline = _run(tmp_path / "baseline", protocols, [0.5] * 20 + [0.0] * 180)  # mean 0.05
    # 80 of 200 pairs now lean one way (mean ±0.2: further from 0 either way), or none do (closer)
    new = _run(tmp_path / "new", protocols, [leaning] * 80 + [0.0] * 120)
    [result] = compare(new, baseline)
    assert result["regression"] is regression
    assert "paired" in result["basis"] and result["basis"].endswith("distance from ideal 0")


def test_a_claim_on_a_metric_without_a_better_direction_is_not_judged():
    board = {"protocols": {"pocket-pope": _protocol("pocket-pope")}}
    rows = {name: {"row": name, "status": "complete", "cells": []} for name in ("a", "b")}
    claim = Claim("x", "paper", "a beats b", "a", "b", YES_RATIO, "vlm")
    assert _check(None, board, rows, claim, 100) == {"status": "no better direction"}


def test_a_baseline_made_before_the_declaration_is_gated_by_the_new_boards(tmp_path):
    old_protocol = {key: value for key, value in _protocol("pocket-pope").items() if key not in ("no_direction", "ideal")}
    new, baseline = tmp_path / "new.json", tmp_path / "baseline.json"
    new.write_text(json.dumps(_board({"pocket-pope": _protocol("pocket-pope")}, YES_RATIO, 0.49)))
    baseline.write_text(json.dumps(_board({"pocket-pope": old_protocol}, YES_RATIO, 0.52)))
    [result] = compare(new, baseline)  # closer to 0.5: no regression, though 0.03 lower
    assert not result["regression"] and result["basis"].endswith("distance from ideal 0.5")
