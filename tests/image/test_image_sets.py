"""FID and KID as registered set-metric benchmarks: score-only grading, the stored summary, the leaderboard path."""

import json

import numpy as np
import pytest
from PIL import Image

from distillbench.benchmarks import image_metrics
from distillbench.benchmarks.image_sets import subsample_interval
from distillbench.core.recipe import validate_options
from distillbench.core.registry import BENCHMARKS
from distillbench.core.score_only import score_predictions
from distillbench.core.store import Store
from distillbench.core.item_metrics import set_metric_summary
from distillbench.leaderboards.render import format_metric
from distillbench.pocket.shapes import BACKGROUND, generate

SAMPLES = 24


def _predictions(tmp_path, images, name="predictions.jsonl"):
    folder = tmp_path / name.removesuffix(".jsonl")
    folder.mkdir()
    lines = []
    for index, image in enumerate(images):
        path = folder / f"{index:05}.png"
        Image.fromarray(image).save(path)
        lines.append(json.dumps({"id": f"{index:05}", "response": str(path)}))
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def oracle_and_blank(tmp_path_factory):
    """Other scenes of the world (a perfect model's fresh draw) and grey images (a model that draws nothing)."""
    tmp_path = tmp_path_factory.mktemp("sets")
    oracle = [scene.render() for scene in generate("test", SAMPLES, seed=1)]
    blank = [np.full((32, 32, 3), BACKGROUND, dtype=np.uint8)] * SAMPLES
    return _predictions(tmp_path, oracle, "oracle.jsonl"), _predictions(tmp_path, blank, "blank.jsonl")


def test_registered_as_set_metrics_lower_is_better():
    for name, metric in (("fid", "fid"), ("kid", "kid"), ("pocket-fid", "fid"), ("pocket-kid", "kid")):
        entry = BENCHMARKS.entry(name)
        definitions = entry.obj.metric_definitions()
        assert entry.family == "image"
        assert definitions["set_metrics"] == [metric] and definitions["lower_is_better"] == [metric]


@pytest.mark.parametrize("name", ["pocket-fid", "pocket-kid"])
def test_pocket_set_metric_through_score_only(name, oracle_and_blank):
    oracle, blank = oracle_and_blank
    options = {"samples": SAMPLES, "ci_resamples": 20}
    metric = name.removeprefix("pocket-")
    perfect = score_predictions(name, oracle, options)
    empty = score_predictions(name, blank, options)
    assert set(perfect["metrics"]) == {metric}
    # a fresh draw of the world is far closer to the reference than images with nothing drawn
    assert abs(perfect["metrics"][metric]["mean"]) < 0.2 * empty["metrics"][metric]["mean"]
    low, high = empty["metrics"][metric]["ci95"]
    assert low <= high and empty["metrics"][metric]["n"] == SAMPLES
    protocol = perfect["protocol"]
    assert protocol["metric"] == metric and protocol["samples"] == SAMPLES == protocol["reference_samples"]
    assert len(protocol["reference_hash"]) == 64 and protocol["extractor"] == "pocket-shapes-feature-net"
    assert "half-sampling without replacement" in protocol["ci"] and protocol["resize"].startswith("none at 32x32")
    assert all(row.keys() == {"id", "reason"} for row in perfect["per_item"])  # nothing per item


def test_fid_of_the_reference_set_itself_is_zero(tmp_path):
    path = _predictions(tmp_path, [scene.render() for scene in generate("test", SAMPLES, seed=0)])
    assert abs(score_predictions("pocket-fid", path, {"samples": SAMPLES})["metrics"]["fid"]["mean"]) < 1e-6


def test_no_ci_is_an_explicit_none(oracle_and_blank):
    results = score_predictions("pocket-fid", oracle_and_blank[1], {"samples": SAMPLES, "ci_resamples": 0})
    assert results["metrics"]["fid"]["ci95"] is None and results["protocol"]["ci"] == "none"


def test_fid_on_a_prompt_file_and_reference_folder(tmp_path, oracle_and_blank):
    scenes = generate("test", SAMPLES, seed=0)
    reference = tmp_path / "reference"
    reference.mkdir()
    for index, scene in enumerate(scenes):
        scene.to_pil().save(reference / f"{index:05}.png")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"{i:05}", "prompt": s.caption}) + "\n" for i, s in enumerate(scenes)))
    options = {"prompts": str(prompts), "reference": str(reference), "extractor_kind": "pocket"}
    external = score_predictions("fid", oracle_and_blank[1], options)
    pocket = score_predictions("pocket-fid", oracle_and_blank[1], {"samples": SAMPLES, "ci_resamples": 0})
    assert external["metrics"]["fid"]["mean"] == pytest.approx(pocket["metrics"]["fid"]["mean"], rel=1e-9)
    assert external["protocol"]["reference_hash"] == pocket["protocol"]["reference_hash"]
    _, problems = validate_options(BENCHMARKS.get("fid"), {"prompts": str(prompts), "reference": str(reference)}, "fid")
    assert any("inception-2015-12-05.pt" in problem for problem in problems)


def test_subsample_interval_is_seeded_and_brackets_a_mean():
    values = np.random.default_rng(0).normal(size=(200, 1))
    point = float(values.mean())
    interval = subsample_interval(lambda rows: float(rows.mean()), values, point, 500, seed=3)
    assert interval == subsample_interval(lambda rows: float(rows.mean()), values, point, 500, seed=3)
    # a mean's standard error is 1/√200 ≈ 0.071: the interval's half-width is about 1.96 of it
    assert interval[0] < point < interval[1] and 0.22 < interval[1] - interval[0] < 0.34
    assert subsample_interval(lambda rows: 0.0, values, 0.0, 0) is None


def _gaussian_fid_world(dimension=8):
    """A fixed reference sample's statistics and a generator N(0.3·1, diag(0.5..2)) whose FID against
    them is known in closed form (the Fréchet distance of two Gaussians)."""
    rng = np.random.default_rng(0)
    mu_r, sigma_r = image_metrics.feature_statistics(rng.normal(size=(5000, dimension)))
    mu_g, sigma_g = np.full(dimension, 0.3), np.diag(np.linspace(0.5, 2.0, dimension))
    true = image_metrics.frechet_distance(mu_g, sigma_g, mu_r, sigma_r)
    statistic = lambda rows: image_metrics.frechet_distance(*image_metrics.feature_statistics(rows), mu_r, sigma_r)
    return rng, (mu_g, sigma_g), true, statistic


def _with_replacement(statistic, features, resamples, seed):
    """The interval the image benchmarks used before: a percentile bootstrap with replacement."""
    rng = np.random.default_rng(seed)
    values = [statistic(features[rng.integers(0, len(features), len(features))]) for _ in range(resamples)]
    return np.quantile(values, [0.025, 0.975]), float(np.mean(values))


def test_fid_half_sampling_interval_is_centred_where_the_bootstrap_was_shifted_up():
    rng, (mu_g, sigma_g), true, statistic = _gaussian_fid_world()
    trials, old_shift, new_shift, old_covers, new_covers, points = 40, [], [], 0, 0, []
    for trial in range(trials):
        features = rng.multivariate_normal(mu_g, sigma_g, 200)
        point = statistic(features)
        low, high = subsample_interval(statistic, features, point, 100, seed=trial)
        (old_low, old_high), duplicated_mean = _with_replacement(statistic, features, 100, trial)
        assert low < point < high
        assert duplicated_mean > point  # duplicates inflate FID: every resample's mean sits above the sample's
        old_shift.append((old_low + old_high) / 2 - point)
        new_shift.append((low + high) / 2 - point)
        old_covers += old_low <= true <= old_high
        new_covers += low <= true <= high
        points.append(point)
    spread = np.std(points)  # the point estimate's own sampling spread
    assert np.mean(old_shift) > 0.5 * spread  # the bootstrap interval sat above the point estimate
    assert abs(np.mean(new_shift)) < 0.2 * spread
    assert new_covers >= 0.85 * trials > old_covers  # and covered the true FID far less often


def test_set_metric_summaries_round_trip_the_store_and_pool_over_seeds(tmp_path):
    store = Store(tmp_path / "results.sqlite")
    summaries = {"cell-a": {"mean": 12.0, "ci95": [10.0, 15.0], "n": 24}, "cell-b": {"mean": 14.0, "ci95": None, "n": 24}}
    for cell, summary in summaries.items():
        store.save_evaluation(cell, "bench", "pocket-fid", {}, 1.0,
                              [{"id": "00000", "output": "x.png", "scores": {}, "reason": ""}], {"fid": summary})
    stored = [store.metric_summaries(cell, "bench")["fid"] for cell in summaries]
    store.close()
    assert stored == list(summaries.values())
    assert set_metric_summary(stored[:1]) == stored[0]
    pooled = set_metric_summary(stored)
    # over seeds: a t interval over the per-seed values (12 and 14: sd √2, df 1, t 12.706)
    half = 12.706204736174707 * np.sqrt(2) / np.sqrt(2)
    assert pooled["mean"] == 13.0 and pooled["n"] == 24 and pooled["ci95"] == pytest.approx([13 - half, 13 + half])


def test_leaderboard_rows_read_set_metrics_from_the_store(tmp_path):
    from types import SimpleNamespace

    from distillbench.leaderboards.aggregate import _row_metrics

    store = Store(tmp_path / "results.sqlite")
    for cell, fid in (("seed-0", 10.0), ("seed-1", 14.0)):
        store.save_evaluation(cell, "bench", "pocket-fid", {}, 1.0, [{"id": "00000", "output": "x.png", "scores": {},
                                                                      "reason": ""}],
                              {"fid": {"mean": fid, "ci95": [fid - 1, fid + 1], "n": 24}})
    plan = SimpleNamespace(benchmarks=[SimpleNamespace(name="pocket-fid", key="bench",
                                                       benchmark=BENCHMARKS.get("pocket-fid")())])
    cells = [SimpleNamespace(key="seed-0", seed=0), SimpleNamespace(key="seed-1", seed=1)]
    one, _ = _row_metrics(store, cells[:1], plan)
    both, spread = _row_metrics(store, cells, plan)
    store.close()
    assert one == {"pocket-fid/fid": {"mean": 10.0, "ci95": [9.0, 11.0], "n": 24}}
    half = 12.706204736174707 * np.std([10.0, 14.0], ddof=1) / np.sqrt(2)  # t interval over the two seeds
    assert both["pocket-fid/fid"]["mean"] == 12.0 and both["pocket-fid/fid"]["ci95"] == pytest.approx([12 - half,
                                                                                                       12 + half])
    assert spread["pocket-fid/fid"]["per_seed"] == {"0": 10.0, "1": 14.0}
