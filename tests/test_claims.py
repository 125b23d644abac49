"""A paper's claim "A beats B" holds when A is better on the metric with p < 0.05: higher, or lower where
the benchmark's protocol says the metric is better lower."""

import pytest

from distillbench.leaderboards import claims
from distillbench.leaderboards.claims import Claim, check_claims


@pytest.mark.parametrize("lower_is_better, diff, seeds, held", [
    ([], +0.1, 3, "holds"), ([], -0.1, 3, "does not hold"),
    (["gap"], -0.1, 3, "holds"), (["gap"], +0.1, 3, "does not hold"),
    ([], +0.1, 2, "insufficient seeds"), ([], +0.1, 1, "insufficient seeds"),
])
def test_a_claim_holds_when_the_better_row_is_ahead_with_three_seeds_each(monkeypatch, lower_is_better, diff, seeds,
                                                                           held):
    monkeypatch.setattr(claims, "item_values", lambda store, cells, key: {})
    monkeypatch.setattr(claims, "paired_test", lambda *args: {"diff": diff, "p": 0.001, "n": 100, "test": "t",
                                                              "seeds": [seeds, 3]})
    rows = [{"row": name, "kind": "method", "method": name, "status": "complete", "cells": ["c"], "metrics": {}}
            for name in ("a", "b")]
    board = {"rows": rows, "protocols": {"bench": {"key": "k", "lower_is_better": lower_is_better}}}
    claim = Claim("a", "paper", "a beats b", better="a", worse="b", metric="bench/gap")
    (result,) = check_claims(None, board, (claim,))
    assert result["status"] == held


class _Costs:
    """A store stand-in that holds each cell's cost."""

    def __init__(self, costs: dict[str, dict]):
        self.costs = costs

    def cell(self, key):
        return {"cost": self.costs[key]}


def _checked(monkeypatch, better: dict, worse: dict, store=None) -> str:
    """The status of 'a beats b' when a is well ahead (p = 0.001, three seeds each), with the rows' declarations."""
    monkeypatch.setattr(claims, "item_values", lambda store, cells, key: {})
    monkeypatch.setattr(claims, "paired_test", lambda *args: {"diff": 0.1, "p": 0.001, "n": 100, "test": "t",
                                                              "seeds": [3, 3]})
    rows = [{"row": name, "kind": "method", "method": name, "status": "complete", "cells": [f"{name}{seed}" for seed
                                                                                           in range(3)],
             "metrics": {}, **declared} for name, declared in (("a", better), ("b", worse))]
    board = {"rows": rows, "protocols": {"bench": {"key": "k", "lower_is_better": []}}}
    (result,) = check_claims(store, board, (Claim("a", "paper", "a beats b", better="a", worse="b",
                                                  metric="bench/m"),))
    return result["status"]


@pytest.mark.parametrize("better, worse, held", [
    ({"starts_from": "sft"}, {"starts_from": None}, "no control (starts from sft)"),
    ({"starts_from": "sft"}, {"starts_from": "dckd"}, "no control (starts from sft)"),
    ({"starts_from": "sft"}, {"starts_from": "sft"}, "holds"),  # the control: the same start
    ({"starts_from": None}, {"starts_from": "sft"}, "holds"),  # a baseline trained longer only makes it harder
])
def test_a_row_that_continues_another_needs_a_baseline_from_the_same_student(monkeypatch, better, worse, held):
    assert _checked(monkeypatch, better, worse) == held


@pytest.mark.parametrize("steps, held", [
    ([0, 0, 0], "mechanism inactive (on_policy_steps 0 in 3 of 3 seeds)"),
    ([5, 0, 2], "mechanism inactive (on_policy_steps 0 in 1 of 3 seeds)"),
    ([5, 1, 2], "holds"),
])
def test_a_claim_whose_mechanism_never_engaged_is_no_verdict(monkeypatch, steps, held):
    store = _Costs({**{f"a{seed}": {"on_policy_steps": n} for seed, n in enumerate(steps)},
                    **{f"b{seed}": {} for seed in range(3)}})
    assert _checked(monkeypatch, {"engaged_by": "on_policy_steps"}, {"engaged_by": None}, store) == held


TUNED = {"trials": 3, "chosen": {"budget": {"learning_rate": 1e-3}}}


@pytest.mark.parametrize("better, worse, held", [
    ({"tuning": TUNED}, {"tuning": "untuned"}, "unequal tuning (a tuned, b not)"),
    ({"tuning": TUNED}, {"tuning": TUNED}, "holds"),
    ({"tuning": "untuned"}, {"tuning": TUNED}, "holds"),  # a search only the baseline got makes it harder
    ({"tuning": "untuned"}, {"tuning": "untuned"}, "holds"),
    ({"tuning": {"trials": 0, "note": "nothing to search"}}, {"tuning": "untuned"}, "holds"),
    # the init, scored as it is: nothing of it to tune, and no seeds to ask of it (the test reports 3 here)
    ({"tuning": TUNED}, {"kind": "reference"}, "holds"),
])
def test_a_tuned_row_against_an_untuned_baseline_is_no_verdict(monkeypatch, better, worse, held):
    assert _checked(monkeypatch, {"engaged_by": None, **better}, {"engaged_by": None, **worse}) == held


def test_boards_without_the_declarations_read_them_from_the_method_classes():
    rows = {"redi": {"method": "redi"}, "dpo": {"method": "dpo"}, "distillm": {"method": "distillm"}}
    assert claims._declared(rows["redi"], "starts_from") == "sft"
    assert claims._declared(rows["dpo"], "starts_from") is None
    assert claims._declared(rows["distillm"], "engaged_by") == "on_policy_steps"
    assert claims._declared({"method": None}, "engaged_by") is None  # a reference row


def test_redis_claim_is_checked_against_dpo_from_the_sft_student():
    (claim,) = [c for c in claims.CLAIMS if c.method == "redi"]
    assert claim.worse == "dpo[starts_from=sft]"


class _Cells:
    """A store stand-in that holds each cell's final golden distance."""

    def __init__(self, distances: dict[str, float]):
        self.distances = distances

    def cell(self, key):
        return {"cost": {"final_measures": {"golden_distance": self.distances[key]}}}


def _distance_board(online: list[str], offline: list[str]) -> dict:
    rows = [{"row": f"teacher-hacking[data={data}]", "kind": "method", "method": "teacher-hacking",
             "status": "complete", "cells": cells, "metrics": {}} for data, cells in (("online", online),
                                                                                      ("offline", offline))]
    return {"rows": rows, "protocols": {}}


def test_the_teacher_hacking_claim_is_a_welch_test_over_seeds():
    scipy_stats = pytest.importorskip("scipy.stats")
    (claim,) = [c for c in claims.CLAIMS if c.method == "teacher-hacking"]
    distances = {"on0": 0.10, "on1": 0.12, "on2": 0.11, "off0": 0.20, "off1": 0.25, "off2": 0.22}
    (result,) = check_claims(_Cells(distances), _distance_board(["on0", "on1", "on2"], ["off0", "off1", "off2"]),
                             (claim,))
    expected = scipy_stats.ttest_ind([0.10, 0.12, 0.11], [0.20, 0.25, 0.22], equal_var=False).pvalue
    assert result["p"] == pytest.approx(expected) and result["p"] < 0.05 and result["status"] == "holds"
    assert result["diff"] == pytest.approx(0.11 - 0.2233333) and result["seeds"] == [3, 3]
    # a lower distance by the sign of the means alone is no verdict
    noisy = {"on0": 0.10, "on1": 0.30, "on2": 0.05, "off0": 0.20, "off1": 0.10, "off2": 0.25}
    (result,) = check_claims(_Cells(noisy), _distance_board(["on0", "on1", "on2"], ["off0", "off1", "off2"]), (claim,))
    assert result["diff"] < 0 and result["status"] == "does not hold"


def test_the_claims_table_shows_each_test_its_p_value_and_its_seeds():
    claim = Claim("a", "paper", "a beats b", better="a", worse="b", metric="bench/m")
    results = [{"claim": claim, "status": "holds", "diff": 0.2, "ci95": [0.1, 0.3], "p": 1 / 401, "p_floor": 1 / 401,
                "p_at_floor": True, "seeds": [3, 3], "test": "two-level t"},
               {"claim": claim, "status": "insufficient seeds", "diff": 0.2, "ci95": [0.1, 0.3], "p": 0.01,
                "seeds": [1, 1], "test": "exact McNemar"}]
    table = claims.claims_markdown(results)
    assert "| two-level t | < 0.0025 | 3 vs 3 | holds |" in table
    assert "| exact McNemar | 0.01 | 1 vs 1 | insufficient seeds |" in table


def test_a_claim_on_a_set_metric_is_a_welch_test_over_each_seeds_set_value(monkeypatch):
    scipy_stats = pytest.importorskip("scipy.stats")
    monkeypatch.setattr(claims, "item_values", lambda store, cells, key: {})  # a set metric has no per-item values
    (claim,) = [c for c in claims.CLAIMS if c.better == "f-distill[divergence=forward-kl]"]
    bench, _, metric = claim.metric.partition("/")
    recalls = {"f-distill[divergence=forward-kl]": [0.81, 0.84, 0.83], "f-distill[divergence=reverse-kl]": [0.62, 0.6, 0.65]}
    rows = [{"row": name, "kind": "method", "method": "f-distill", "status": "complete", "cells": ["c"], "metrics": {},
             "seed_spread": {claim.metric: {"per_seed": dict(zip("012", values))}}} for name, values in recalls.items()]
    board = {"rows": rows, "protocols": {bench: {"key": "k", "lower_is_better": ["nll", "sliced_w2"]}}}
    (result,) = check_claims(None, board, (claim,))
    expected = scipy_stats.ttest_ind(*recalls.values(), equal_var=False).pvalue
    assert result["p"] == pytest.approx(expected) and result["status"] == "holds" and result["seeds"] == [3, 3]
    assert result["diff"] == pytest.approx(0.8267 - 0.6233, abs=1e-3) and "recall" in result["test"]
    rows[1]["seed_spread"] = {}  # a row without per-seed figures: nothing to test
    assert check_claims(None, board, (claim,))[0]["status"] == "not run"


def test_a_reference_row_needs_no_seeds_and_a_trained_row_three():
    test = {"diff": 0.1, "p": 0.001, "seeds": [3, 1]}
    assert claims._verdict(test, 0.1, None, (True, False))["status"] == "holds"  # against the init
    assert claims._verdict(test, 0.1, None, (True, True))["status"] == "insufficient seeds"
