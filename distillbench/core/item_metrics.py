"""From per-item values to a benchmark's metrics: plain means, ratios of sums and macro means.

Most metrics are means of per-item values. Some corpus metrics are not: POPE's precision is
ΣTP/Σ(TP+FP) over the items and CHAIRi is Σhallucinated/Σmentions; a benchmark declares those in
``ratio_metrics`` (metric → its numerator and denominator components, which every item carries),
and the means over groups of items (POPE's average over its splits, VideoHallucer's overall over
its categories) in ``macro_metrics``. Every such metric is one statistic of per-item parts,
mean_k Σ_i num[i, k] / Σ_i den[i, k] (`stats.pooled_value`), so one bootstrap and one paired test
serve them all; a plain metric that enters a macro mean counts as (value, 1).

Set metrics (FID, KID, ``set_metrics``) are no statistic of per-item values at all: the benchmark
computes them from the whole set of outputs (`Benchmark.score_set`) and a row reads them back from
the store (`set_metric_summary`: over several seeds, a t interval over the seeds' values); they have no
per-item records and no paired tests.

`values` everywhere is what `aggregate.item_values` returns: metric → item id → that item's values
in each cell (one per seed). Intervals and paired tests of several seeds carry the seed-to-seed
variance as well as the items' (`two_level`); a one-seed row's are over items, conditional on its
trained model. The components stay in the per-item records and never become metrics of their own.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
from scipy.stats import t as student_t

from distillbench.core.stats import pooled_value
from distillbench.core.two_level import two_level_difference, two_level_summary

Values = Mapping[str, Mapping[str, np.ndarray]]


def _ratios(protocol: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    return {name: tuple(parts) for name, parts in (protocol.get("ratio_metrics") or {}).items()}


def _macros(protocol: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    return {name: tuple(parts) for name, parts in (protocol.get("macro_metrics") or {}).items()}


def components(protocol: Mapping[str, Any]) -> set[str]:
    """The per-item parts of the ratio metrics (kept in item records, never shown as metrics)."""
    return {part for parts in _ratios(protocol).values() for part in parts}


def is_pooled(metric: str, protocol: Mapping[str, Any]) -> bool:
    """Whether `metric` is a ratio of sums or a macro mean rather than a mean of per-item values."""
    return metric in _ratios(protocol) or metric in _macros(protocol)


def _columns(values: Values, metric: str, protocol: Mapping[str, Any]) -> dict[str, dict[str, tuple]]:
    """Constituent metric → item id → (num, den) arrays over cells, for the constituents that have items."""
    ratios = _ratios(protocol)
    columns = {}
    for name in _macros(protocol).get(metric, (metric,)):
        if name in ratios:
            nums, dens = (values.get(part, {}) for part in ratios[name])
            column = {item: (nums[item], dens[item]) for item in nums if item in dens}
        else:
            column = {item: (value, np.ones_like(value)) for item, value in values.get(name, {}).items()}
        if column:
            columns[name] = column
    return columns


def _arrays(columns: dict[str, dict[str, tuple]], names: list[str], items: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """num, den of shape [items, constituents, cells]; an item outside a constituent adds (0, 0) to it."""
    cells = len(next(iter(columns[names[0]].values()))[0])
    num, den = np.zeros((len(items), len(names), cells)), np.zeros((len(items), len(names), cells))
    for k, name in enumerate(names):
        for row, item in enumerate(items):
            if item in columns[name]:
                num[row, k], den[row, k] = columns[name][item]
    return num, den


def pooled_parts(values: Values, metric: str, protocol: Mapping[str, Any]):
    """(item ids, num, den) of a pooled metric, arrays [items, constituents, cells]; None without items."""
    columns = _columns(values, metric, protocol)
    if not columns:
        return None
    items = sorted(set().union(*columns.values()))
    return (items, *_arrays(columns, list(columns), items))


def metric_names(values: Values, protocol: Mapping[str, Any]) -> list[str]:
    """The metrics a benchmark's per-item values give: the plain ones (not components) and the pooled
    ones that have items, sorted."""
    hidden = components(protocol) | set(_ratios(protocol)) | set(_macros(protocol))
    plain = [name for name in values if name not in hidden and values[name]]
    pooled = [name for name in (*_ratios(protocol), *_macros(protocol)) if _columns(values, name, protocol)]
    return sorted(set(plain) | set(pooled))


def summarize_metrics(values: Values, protocol: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """metric → {"mean", "ci95", "n", "variance_from"(, "df")}: the value over cells × items and its 95%
    interval (`two_level.two_level_summary`: over seeds and items with several cells, Student's t at
    Satterthwaite's df; a percentile bootstrap over items with one); n is the number of items."""
    metrics = {}
    for name in metric_names(values, protocol):
        if is_pooled(name, protocol):
            _, num, den = pooled_parts(values, name, protocol)
            summary = two_level_summary(np.moveaxis(num, -1, 0), np.moveaxis(den, -1, 0))
        else:
            summary = two_level_summary(cells_by_items(values, name, list(values[name])))
        metrics[name] = _row_fields(summary)
    return metrics


def _row_fields(summary: Mapping[str, Any]) -> dict[str, Any]:
    """What a leaderboard row keeps of a summary: the df only when finite and present (JSON has no ∞)."""
    row = {key: summary[key] for key in ("mean", "ci95", "n", "variance_from")}
    if summary.get("df") is not None and np.isfinite(summary["df"]):
        row["df"] = round(float(summary["df"]), 2)
    return row


def cells_by_items(values: Values, metric: str, items: list[str]) -> np.ndarray:
    """[cells, items] of a plain metric's values (the layout of `two_level`)."""
    return np.array([values[metric][item] for item in items]).T


def per_cell_values(values: Values, protocol: Mapping[str, Any]) -> dict[str, list[float]]:
    """metric → its value in each cell separately (the per-seed numbers of a row)."""
    result = {}
    for name in metric_names(values, protocol):
        if is_pooled(name, protocol):
            _, num, den = pooled_parts(values, name, protocol)
            result[name] = [float(v) for v in pooled_value(num.sum(axis=0).T, den.sum(axis=0).T)]
        else:
            result[name] = [float(v) for v in np.array(list(values[name].values())).mean(axis=0)]
    return result


def paired_pooled(values_a: Values, values_b: Values, metric: str, protocol: Mapping[str, Any],
                  resamples: int) -> dict | None:
    """`two_level.two_level_difference` of a pooled metric over the items both rows scored (None without any)."""
    columns_a, columns_b = _columns(values_a, metric, protocol), _columns(values_b, metric, protocol)
    names = [name for name in columns_a if name in columns_b]
    if not names:
        return None
    items = sorted(set().union(*(columns_a[n] for n in names)) & set().union(*(columns_b[n] for n in names)))
    if not items:
        return None
    (num_a, den_a), (num_b, den_b) = (_arrays(columns, names, items) for columns in (columns_a, columns_b))
    num_a, den_a, num_b, den_b = (np.moveaxis(array, -1, 0) for array in (num_a, den_a, num_b, den_b))
    return two_level_difference(num_a, num_b, den_a, den_b, resamples=resamples)


def set_metric_summary(per_cell: list[Mapping[str, Any]]) -> dict[str, Any]:
    """A set metric (FID, KID) of a row from each cell's stored summary (`Benchmark.score_set`): one
    cell's as stored, with the CI `score_set` made (or none); over several seeds the mean of the per-seed
    values with a t interval over them (k − 1 degrees of freedom: the seed-to-seed spread, each seed's own
    sampling noise included; the values are in the row's seed_spread)."""
    if len(per_cell) == 1:
        return dict(per_cell[0])
    values = np.array([summary["mean"] for summary in per_cell], dtype=float)
    half = float(student_t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    mean = float(values.mean())
    return {"mean": mean, "ci95": [mean - half, mean + half], "n": int(per_cell[0]["n"])}


def values_from_records(records: Iterable[tuple[str, Mapping[str, float]]]) -> dict[str, dict[str, np.ndarray]]:
    """`values` for one cell from (item id, per-item values) pairs (score-only mode, one evaluation)."""
    values: dict[str, dict[str, np.ndarray]] = {}
    for item, scores in records:
        for name, value in scores.items():
            values.setdefault(name, {})[item] = np.array([float(value)])
    return values
