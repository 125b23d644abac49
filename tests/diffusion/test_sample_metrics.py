"""The 2-D world's metrics against naive forms and on planted cases (mode dropping, blur, a perfect sampler)."""

import numpy as np
import ot
import pytest
from scipy.stats import multivariate_normal

from distillbench.benchmarks.sample_metrics import (inside_manifold, knn_radii, mode_coverage,
                                                    precision_recall, sliced_wasserstein, true_nll)
from distillbench.kinds.diffusion.points import mixture_log_density
from distillbench.pocket.gaussians2d import grid

WORLD = grid()
MEANS, WEIGHTS = np.asarray(WORLD.means), np.asarray(WORLD.weights)


def _naive_inside(queries, support, k):
    """Each query against every support point's k-NN ball, by loops."""
    radii = [sorted(np.linalg.norm(support - point, axis=1))[k] for point in support]
    return np.array([any(np.linalg.norm(q - s) <= r for s, r in zip(support, radii)) for q in queries])


def test_the_manifold_test_matches_a_naive_loop():
    rng = np.random.default_rng(0)
    support, queries = rng.normal(size=(60, 2)), rng.normal(size=(40, 2)) * 1.5
    assert knn_radii(support, 3) == pytest.approx([sorted(np.linalg.norm(support - p, axis=1))[3] for p in support])
    assert (inside_manifold(queries, support, 3, chunk=7) == _naive_inside(queries, support, 3)).all()


def test_a_sampler_of_the_world_scores_as_the_world_and_dropped_modes_cost_recall_not_precision():
    real, _ = WORLD.sample(2000, seed=1)
    same, _ = WORLD.sample(2000, seed=2)
    precision, recall = precision_recall(real, same)
    assert precision > 0.9 and recall > 0.9
    assert mode_coverage(same, MEANS, WEIGHTS, WORLD.std)["modes"] == 1.0
    half, _ = WORLD.sample(2000, seed=3, class_label=0)  # one row of four modes: mode-seeking
    precision_half, recall_half = precision_recall(real, half)
    assert precision_half > 0.9 and recall_half < 0.35
    assert mode_coverage(half, MEANS, WEIGHTS, WORLD.std)["modes"] == 0.25
    assert true_nll(half, MEANS, WEIGHTS, WORLD.std) < true_nll(same, MEANS, WEIGHTS, WORLD.std) + 0.5
    assert sliced_wasserstein(real, half) > 5 * sliced_wasserstein(real, same)


def test_blurred_samples_lose_precision_high_quality_share_and_likelihood():
    real, _ = WORLD.sample(2000, seed=1)
    same, _ = WORLD.sample(2000, seed=2)
    blurred = same + np.random.default_rng(4).normal(scale=0.6, size=same.shape)
    assert precision_recall(real, blurred)[0] < 0.6 < precision_recall(real, same)[0]
    assert mode_coverage(blurred, MEANS, WEIGHTS, WORLD.std)["high_quality"] < 0.6
    assert true_nll(blurred, MEANS, WEIGHTS, WORLD.std) > true_nll(same, MEANS, WEIGHTS, WORLD.std) + 1


def test_a_mode_with_a_few_stray_points_is_not_covered():
    points = np.repeat(MEANS[:2], [500, 3], axis=0)  # mode 1 holds 3 of 503 points, far below a quarter of 1/16
    coverage = mode_coverage(points, MEANS, WEIGHTS, WORLD.std)
    assert coverage == {"modes": 1 / 16, "high_quality": 1.0}


def test_the_mixture_density_is_scipys_and_integrates_to_one():
    points = np.random.default_rng(5).normal(scale=3, size=(50, 2))
    expected = np.log(sum(w * multivariate_normal(mean, WORLD.std**2 * np.eye(2)).pdf(points)
                          for mean, w in zip(MEANS, WEIGHTS)))
    assert mixture_log_density(points, MEANS, WEIGHTS, WORLD.std) == pytest.approx(expected)
    axis = np.linspace(-5, 5, 401)
    plane = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
    assert np.exp(WORLD.log_density(plane)).sum() * (axis[1] - axis[0]) ** 2 == pytest.approx(1.0, abs=1e-3)


def test_sliced_wasserstein_is_pots_and_zero_for_identical_sets():
    a, _ = WORLD.sample(300, seed=6)
    b = a + np.array([0.5, 0.0])  # a shift by 0.5 along x
    assert sliced_wasserstein(a, a) == pytest.approx(0.0, abs=1e-12)
    assert sliced_wasserstein(a, b, projections=50, seed=3) == ot.sliced_wasserstein_distance(a, b, n_projections=50,
                                                                                          p=2, seed=3)
    # a translation by d moves every projection by d·cosθ: SWD₂ = d·sqrt(E cos²θ) = d/√2 over uniform directions
    assert sliced_wasserstein(a, b, projections=4000) == pytest.approx(0.5 / np.sqrt(2), rel=0.03)


def test_precision_recall_needs_more_points_than_k():
    with pytest.raises(ValueError, match="more than k = 3"):
        precision_recall(np.zeros((3, 2)), np.zeros((10, 2)))


def test_prompted_points_are_scored_against_their_own_class():
    """points-2d with prompts: item i asks for class i mod 4 (a row of the grid); a point on a mode of another
    row is on the world but not on its prompt."""
    from distillbench.benchmarks.points import Points2D, world_of

    world = world_of("pocket:gaussians2d-teacher")
    prompted, plain = Points2D(n=32, prompted=True), Points2D(n=32)
    items = prompted.items()
    assert [item["class"] for item in items[:8]] == [0, 1, 2, 3, 0, 1, 2, 3]
    first_mode = {c: world.means[world.classes.index(c)] for c in range(4)}
    own = [list(first_mode[item["class"]]) for item in items]
    other = [list(first_mode[(item["class"] + 1) % 4]) for item in items]
    assert [prompted.score(item, point).values["high_quality"] for item, point in zip(items, own)] == [1.0] * 32
    assert [prompted.score(item, point).values["high_quality"] for item, point in zip(items, other)] == [0.0] * 32
    assert [plain.score(item, point).values["high_quality"] for item, point in zip(plain.items(), other)] == [1.0] * 32
    # the class-given density: log(¼) more likely on its own row than under the whole world's 16 modes
    gain = plain.score(items[0], own[0]).values["nll"] - prompted.score(items[0], own[0]).values["nll"]
    assert gain == pytest.approx(np.log(4), rel=1e-6)
    # per class, one of its four modes covered: modes = ¼ prompted; on the wrong rows, none
    assert prompted.score_set(items, own)["modes"]["mean"] == pytest.approx(0.25)
    assert prompted.score_set(items, other)["modes"]["mean"] == 0.0
    assert world.given(2).means == tuple(m for m, c in zip(world.means, world.classes) if c == 2)
    assert sum(world.given(2).weights) == pytest.approx(1.0)
