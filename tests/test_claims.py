"""A paper's claim "A beats B" holds when A is better on the metric with p < 0.05: higher, or lower where
the benchmark's protocol says the metric is better lower."""

import pytest

from distillbench.leaderboards import claims
from distillbench.leaderboards.claims import Claim, check_claims


@pytest.mark.parametrize("lower_is_better, diff, held", [
    ([], +0.1, "holds"), ([], -0.1, "does not hold"),
    (["gap"], -0.1, "holds"), (["gap"], +0.1, "does not hold"),
])
def test_a_claim_on_a_lower_is_better_metric_holds_when_the_better_row_is_lower(monkeypatch, lower_is_better, diff,
                                                                                 held):
    monkeypatch.setattr(claims, "item_values", lambda store, cells, key: {})
    monkeypatch.setattr(claims, "paired_test", lambda *args: {"diff": diff, "p": 0.001, "n": 100, "test": "t"})
    rows = [{"row": name, "kind": "method", "method": name, "status": "complete", "cells": ["c"], "metrics": {}}
            for name in ("a", "b")]
    board = {"rows": rows, "protocols": {"bench": {"key": "k", "lower_is_better": lower_is_better}}}
    claim = Claim("a", "paper", "a beats b", better="a", worse="b", metric="bench/gap")
    (result,) = check_claims(None, board, (claim,))
    assert result["status"] == held
