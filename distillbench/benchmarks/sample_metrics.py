"""Metrics of a generated point set against a target distribution with a known density (the 2-D pocket world).

They make mode-seeking against mode-covering checkable: a mode-seeking student keeps precision and a low
negative log-likelihood under the true density while it loses recall and modes; a mode-covering one keeps
recall and modes at some cost in precision.

* **Precision and recall** (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing
  Generative Models", arXiv:1904.06991): each set's manifold is the union of balls around its points with
  radius the distance to the point's k-th nearest neighbour in the same set; precision is the share of
  generated points inside the real manifold, recall the share of real points inside the generated one. The
  paper computes it on VGG-16 features of images; points of the plane are their own features.
* **Mode coverage** (as in the mode-collapse studies on a grid of Gaussians, e.g. Metz et al. 2017,
  arXiv:1611.02163): a point is high quality when it lies within `radius` standard deviations of a mode's
  mean; a mode is covered when it holds at least `min_share` of the points it would hold under the true
  mixture (its weight × n), so a mode visited by a handful of stray points is not counted.
* **Negative log-likelihood under the true density**: −mean log p(x) over generated points.
* **Sliced Wasserstein distance** between the generated set and a real sample: POT's
  ``ot.sliced_wasserstein_distance`` (p = 2, random directions drawn with a fixed seed).
"""

from __future__ import annotations

import numpy as np
import ot
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from distillbench.kinds.diffusion.points import mixture_log_density


def knn_radii(points: np.ndarray, k: int) -> np.ndarray:
    """The distance from each point to its k-th nearest other point of the same set."""
    distances, _ = cKDTree(points).query(points, k=k + 1)  # the nearest is the point itself
    return distances[:, k]


def inside_manifold(queries: np.ndarray, support: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """Whether each query lies in the k-NN manifold of `support` (inside some support point's ball)."""
    radii = knn_radii(support, k)
    return np.concatenate([(cdist(queries[start:start + chunk], support) <= radii[None, :]).any(axis=1)
                           for start in range(0, len(queries), chunk)])


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """(precision, recall) of `fake` against `real` (Kynkäänniemi et al. 2019; k = 3 as in the paper)."""
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision and recall need more than k = {k} points in each set")
    return float(inside_manifold(fake, real, k).mean()), float(inside_manifold(real, fake, k).mean())


def mode_coverage(points: np.ndarray, means: np.ndarray, weights: np.ndarray, std: float, radius: float = 3.0,
                  min_share: float = 0.25) -> dict[str, float]:
    """The share of modes covered and the share of high-quality points (within `radius`·std of a mode)."""
    distances = np.linalg.norm(points[:, None, :] - means[None, :, :], axis=-1)  # [n, modes]
    nearest = distances.argmin(axis=1)
    close = distances[np.arange(len(points)), nearest] <= radius * std
    counts = np.bincount(nearest[close], minlength=len(means))
    expected = np.asarray(weights) * len(points)
    return {"modes": float((counts >= min_share * expected).mean()), "high_quality": float(close.mean())}


def true_nll(points: np.ndarray, means: np.ndarray, weights: np.ndarray, std: float) -> float:
    """−mean log p(x) of generated points under the true mixture (lower: on the data's support)."""
    return float(-mixture_log_density(points, means, weights, std).mean())


def sliced_wasserstein(real: np.ndarray, fake: np.ndarray, projections: int = 200, seed: int = 0) -> float:
    """The sliced 2-Wasserstein distance between two point sets (POT), over `projections` fixed directions."""
    return float(ot.sliced_wasserstein_distance(real, fake, n_projections=projections, p=2, seed=seed))
