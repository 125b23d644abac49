"""The regression gate: compare a new leaderboard with a baseline.

For every row and metric present in both, a drop is a regression when
  * per-item scores of both runs are at hand (each is a run directory holding
    ``results.sqlite``, or a board with its ``<name>.items.csv.gz`` beside it) and the
    paired test over the shared items says the drop is significant (p < 0.05,
    `aggregate.paired_test`: over seeds and items when a row has several seeds; for
    one-seed rows exact McNemar for binary metrics, for ratio-of-sums and macro metrics
    the permutation test that swaps the runs' (numerator, denominator) per item, paired
    permutation otherwise) and larger than the metric's tolerance (default 0);
  * otherwise, when the mean fell by more than the tolerance, whose default is the
    half-width of the baseline's 95% CI.
Metrics are higher-is-better unless the benchmark's protocol (the new board's, else the
baseline's) lists them under ``lower_is_better`` or ``no_direction``. A no-direction metric
(POPE's yes-ratio, VideoHallucer's yes/no differences) is gated two-sided: with an ``ideal`` value
in the protocol, "fell" above reads "moved further from the ideal" (|new − ideal| − |baseline −
ideal| beyond the tolerance; with per-item scores the paired test must also find the runs
different, p < 0.05: a two-sided test of that move when both sit on one side of the ideal, a test
of the change itself when they straddle it); without one, any change beyond the tolerance (and
significant, with per-item scores) is a regression.
Exit status: 0 no regression, 1 a regression, 2 unusable input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


from distillbench.core.errors import UserInputError

from distillbench.leaderboards.aggregate import direction, ideal, item_values, paired_test
from distillbench.leaderboards.records import board_file, item_source

# The gate's permutation tests of one-seed rows: p no lower than 1/10,001, far below its α of 0.05.
GATE_RESAMPLES = 10_000

ALPHA = 0.05


def load_board(path: str | Path) -> tuple[dict[str, Any], Path]:
    """(leaderboard, its file) from a leaderboard JSON or a run directory."""
    path = Path(path)
    file = board_file(path)
    if not file.is_file():
        raise UserInputError(f"{path}: no leaderboard.json here")
    try:
        board = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{file}: not a JSON leaderboard ({exc})") from None
    if not isinstance(board, dict) or board.get("schema_version") != 1 or not isinstance(board.get("rows"), list):
        raise UserInputError(f"{file}: not a distillbench leaderboard (schema_version 1 with rows)")
    for index, row in enumerate(board["rows"]):
        if not isinstance(row, dict) or "row" not in row or not isinstance(row.get("metrics"), dict):
            raise UserInputError(f"{file}: rows[{index}] lacks 'row' or 'metrics'")
    return board, file


def parse_tolerances(pairs: list[str]) -> dict[str, float]:
    tolerances = {}
    for pair in pairs:
        metric, _, value = pair.partition("=")
        try:
            tolerances[metric] = float(value)
        except ValueError:
            raise UserInputError(f"--tolerance {pair}: expected METRIC=NUMBER, e.g. pocket-math/accuracy=0.02") from None
        if tolerances[metric] < 0:
            raise UserInputError(f"--tolerance {pair}: must be >= 0")
    return tolerances


def _paired(items: tuple, new_board, base_board, new_row, base_row, metric: str):
    """The paired test of `metric` between the rows, from (new, baseline) per-item records."""
    bench, _, name = metric.partition("/")
    keys = [board.get("protocols", {}).get(bench, {}).get("key") for board in (new_board, base_board)]
    if None in keys:
        return None
    new_values = item_values(items[0], new_row.get("cells", []), keys[0])
    base_values = item_values(items[1], base_row.get("cells", []), keys[1])
    protocol = {"binary_metrics": [], **new_board["protocols"][bench]}
    return paired_test(new_values, base_values, name, protocol, GATE_RESAMPLES)


def _worsening(board: dict[str, Any], metric: str, baseline: float, delta: float) -> float:
    """How much worse a change of `delta` from `baseline` leaves `metric`, by its declared direction:
    the drop (higher is better), the rise (lower is better), the growth of the distance from the
    ideal (no direction, with an ideal) or the size of the change (no direction, no ideal)."""
    kind = direction(board, metric)
    if kind != "none":
        return -delta if kind == "higher" else delta
    target = ideal(board, metric)
    if target is None:
        return abs(delta)
    return abs(baseline + delta - target) - abs(baseline - target)


def _direction_note(board: dict[str, Any], metric: str) -> str:
    """What the row's verdict measured, for a metric without a better direction."""
    if direction(board, metric) != "none":
        return ""
    target = ideal(board, metric)
    return "; two-sided" if target is None else f"; distance from ideal {target:.4g}"


def compare(new: str | Path, baseline: str | Path, tolerances: dict[str, float] | None = None) -> list[dict[str, Any]]:
    tolerances = tolerances or {}
    new_board, new_file = load_board(new)
    base_board, base_file = load_board(baseline)
    with item_source(new_file) as new_items, item_source(base_file) as base_items:
        items = (new_items, base_items) if new_items is not None and base_items is not None else None
        results = _compare_rows(new_board, base_board, items, tolerances)
    if not results:
        raise UserInputError(f"{new} and {baseline} share no row and metric to compare")
    return results


def _compare_rows(new_board, base_board, items: tuple | None, tolerances: dict[str, float]) -> list[dict[str, Any]]:
    """Every shared row and metric, by the paired test when `items` holds both boards' records."""
    base_rows = {row["row"]: row for row in base_board["rows"]}
    results = []
    for row in new_board["rows"]:
        base_row = base_rows.get(row["row"])
        if base_row is None or row.get("kind") == "reported":  # a paper's number is not a result to gate on
            continue
        for metric, base_value in base_row["metrics"].items():
            if metric not in row["metrics"]:
                results.append({"row": row["row"], "metric": metric, "status": "missing", "regression": True})
                continue
            # The new run's declarations, where it has them: a baseline made before a metric's direction
            # was declared (POPE's yes-ratio, once read as higher-is-better) is gated by today's reading.
            declared = new_board if metric.partition("/")[0] in new_board.get("protocols", {}) else base_board
            delta = row["metrics"][metric]["mean"] - base_value["mean"]
            test = _paired(items, new_board, base_board, row, base_row, metric) if items else None
            if test is not None:
                delta = test["diff"]  # over the shared items, from the per-item records
                tolerance = tolerances.get(metric, 0.0)
                worse = _worsening(declared, metric, base_value["mean"], delta)
                regression = worse > tolerance and test["p"] < ALPHA
                basis = f"{test['test']} p={test['p']:.3g}"
            else:
                low, high = base_value["ci95"] or (base_value["mean"],) * 2  # a set metric may have no CI
                tolerance = tolerances.get(metric, (high - low) / 2)
                regression = _worsening(declared, metric, base_value["mean"], delta) > tolerance
                basis = "mean vs tolerance"
            basis += _direction_note(declared, metric)
            results.append({"row": row["row"], "metric": metric, "new": row["metrics"][metric]["mean"],
                            "baseline": base_value["mean"], "delta": delta, "tolerance": tolerance, "basis": basis,
                            "status": "regression" if regression else "ok", "regression": regression})
    return results
