"""FID and KID from feature arrays, with pluggable feature extractors and cached reference statistics.

**FID** (Heusel et al., 2017, arXiv:1706.08500) = ‖μ₁−μ₂‖² + Tr Σ₁ + Tr Σ₂ − 2·Tr (Σ₁Σ₂)^½, with
μ and Σ the mean and unbiased covariance (``np.cov``, n−1) of the features, all in float64.
Tr (Σ₁Σ₂)^½ is computed from the eigenvalues of the *symmetric* product Σ₁^½ Σ₂ Σ₁^½, which
has the same eigenvalues as Σ₁Σ₂: Σ₁^½ comes from ``numpy.linalg.eigh`` of Σ₁ (eigenvalues
under the rounding level set to 0), then ``eigvalsh`` of the product (likewise), summing
the square roots. We use this rather than ``scipy.linalg.sqrtm(Σ₁Σ₂)`` (pytorch-fid, clean-fid) because the product
of two covariances is not symmetric, so sqrtm works in complex arithmetic and needs
heuristics for the imaginary part it produces (pytorch-fid raises, some clean-fid versions
silently drop it), and it loses accuracy or returns non-finite values when the covariances
are singular — the usual case when there are fewer samples than feature dimensions (2048 for
Inception); a symmetric eigendecomposition is backward stable, real and defined for every
PSD input. It equals torchmetrics' ``eigvals(Σ₁Σ₂).sqrt().real.sum()`` in exact arithmetic;
tests check both libraries agree with it to 1e-4 relative on the same features.

**KID** (Bińkowski et al., 2018, arXiv:1801.01401) = the unbiased MMD² with the cubic
polynomial kernel k(x, y) = (xᵀy/d + 1)³, averaged over random subsets as clean-fid's
``kernel_distance`` does: 100 subsets of m = min(n₁, n₂, 1000) features from each set,
drawn without replacement by ``numpy.random.RandomState(seed).choice`` in clean-fid's order
(so, seeded alike, the two agree exactly); the standard deviation over subsets is reported
as torchmetrics does (population). KID is unbiased, so it can be negative on small sets.

**Protocol.** Every number comes with its protocol (`protocol`): metric, this library and
the versions of clean-fid/torchmetrics it was checked against, the extractor and its
weights' hash, the resize mode, sample counts, and the reference set's content hash.
Reference statistics (μ, Σ and the features, for KID) are cached per (reference content
hash, extractor) in ``$DISTILLBENCH_CACHE/image-stats``.

Extractors: the pocket-shapes CNN's (`POCKET_NETWORKS` ``shapes-features``,
`distillbench.pocket.shapes_features.PocketFeatureExtractor`) and `CleanFIDInception` (clean-fid's TF-Inception torchscript, ``inception-2015-12-05.pt``,
loaded from a local folder, never downloaded; resize ``clean`` = PIL bicubic on floats to
299, or ``legacy_tensorflow`` = the network's own resize).

Score-only use: ``python -m distillbench.benchmarks.image_metrics --reference DIR --generated DIR``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any, Literal, Protocol, Sequence

import numpy as np

from distillbench.core.errors import UserInputError
from distillbench.core.files import user_cache_dir
from distillbench.core.inputs import absent_allowed
from distillbench.core.recipe import KEY_MARKER, WHEN_SET
from distillbench.core.registry import POCKET_NETWORKS

SQRT_METHOD = "eigvalsh of sqrt(S1) S2 sqrt(S1) (symmetric; float64)"
KERNEL = "cubic polynomial (x.y/d + 1)^3, unbiased MMD^2"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".npy")


# --- the statistics -----------------------------------------------------------------------
def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (n − 1), in float64."""
    features = _as_features(features)
    if len(features) < 2:
        raise ValueError(f"FID needs at least 2 feature vectors, got {len(features)}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _numerically_nonnegative(eigenvalues: np.ndarray) -> np.ndarray:
    """Eigenvalues below the rounding level (numpy.linalg.matrix_rank's cut-off: max·n·eps) are 0:
    with n > samples the covariances are singular, and the square roots of their rounding
    noise (~1e-8 each) would otherwise add up to a visible bias."""
    cutoff = max(float(eigenvalues.max(initial=0.0)), 0.0) * len(eigenvalues) * np.finfo(np.float64).eps
    return np.where(eigenvalues > cutoff, eigenvalues, 0.0)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigenvectors * np.sqrt(_numerically_nonnegative(eigenvalues))) @ eigenvectors.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr (Σ₁Σ₂)^½ = Σᵢ √λᵢ(Σ₁^½ Σ₂ Σ₁^½), eigenvalues under the rounding level taken as 0."""
    root = _psd_sqrt(np.asarray(sigma1, dtype=np.float64))
    product = root @ np.asarray(sigma2, dtype=np.float64) @ root
    eigenvalues = np.linalg.eigvalsh((product + product.T) / 2)
    return float(np.sqrt(_numerically_nonnegative(eigenvalues)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"feature dimensions differ: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2))


def fid_from_features(features1, features2) -> float:
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


def polynomial_mmd(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² of two equal-sized samples under the cubic polynomial kernel."""
    m, dimension = x.shape
    k_xx = (x @ x.T / dimension + 1) ** 3
    k_yy = (y @ y.T / dimension + 1) ** 3
    k_xy = (x @ y.T / dimension + 1) ** 3
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.sum() / m**2)


def kid_from_features(features1, features2, num_subsets: int = 100, subset_size: int = 1000,
                      seed: int = 0) -> tuple[float, float]:
    """KID (mean, population std over subsets). Subsets as clean-fid's ``kernel_distance``:
    m = min(n₁, n₂, subset_size); per subset, m rows of `features2` then m rows of
    `features1`, each by ``RandomState(seed).choice(n, m, replace=False)``."""
    features1, features2 = _as_features(features1), _as_features(features2)
    if features1.shape[1] != features2.shape[1]:
        raise ValueError(f"feature dimensions differ: {features1.shape[1]} vs {features2.shape[1]}")
    m = min(len(features1), len(features2), subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 feature vectors in each set")
    rng = np.random.RandomState(seed)
    values = []
    for _ in range(num_subsets):
        x = features2[rng.choice(len(features2), m, replace=False)]
        y = features1[rng.choice(len(features1), m, replace=False)]
        values.append(polynomial_mmd(x, y))
    return float(np.mean(values)), float(np.std(values))


def _as_features(features) -> np.ndarray:
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"features must be a (samples, dimensions) array, got shape {array.shape}")
    return array


# --- extractors -----------------------------------------------------------------------------
class FeatureExtractor(Protocol):
    identity: dict[str, Any]  # name, weights hash, resize mode: part of the cache key and the protocol

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray: ...


class CleanFIDInception:
    """clean-fid's Inception-v3 (the TF-FID torchscript, 2048-d pool features) from a local folder
    holding ``inception-2015-12-05.pt``; preprocessing exactly as clean-fid's ``ResizeDataset``
    for `mode` ``clean`` (PIL bicubic on float32 to 299×299) or ``legacy_tensorflow``."""

    def __init__(self, weights_dir: str | Path, mode: str = "clean", device: str = "cpu", batch_size: int = 32):
        from cleanfid.inception_torchscript import InceptionV3W
        from cleanfid.utils import ResizeDataset

        if mode not in ("clean", "legacy_tensorflow"):
            raise ValueError(f"mode must be 'clean' or 'legacy_tensorflow', got {mode!r}")
        weights = Path(weights_dir) / "inception-2015-12-05.pt"
        if not weights.is_file():
            raise FileNotFoundError(f"{weights} is missing (clean-fid's Inception torchscript; it is never downloaded)")
        self.model = InceptionV3W(str(weights_dir), download=False, resize_inside=(mode == "legacy_tensorflow"))
        self.model = self.model.to(device).eval()
        self.preprocess = ResizeDataset([], mode)
        self.device, self.batch_size = device, batch_size
        self.identity = {"extractor": "clean-fid inception-2015-12-05", "library": f"clean-fid {_version('clean-fid')}",
                         "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(), "feature_dim": 2048,
                         "resize": {"clean": "clean-fid clean: PIL bicubic on float32 to 299x299",
                                    "legacy_tensorflow": "clean-fid legacy_tensorflow: resize inside the network"}[mode]}

    def _tensor(self, image: np.ndarray):
        resized = self.preprocess.fn_resize(np.asarray(image, dtype=np.uint8)[..., :3])
        if resized.dtype == np.uint8:
            return self.preprocess.transforms(np.array(resized)) * 255
        return self.preprocess.transforms(resized)

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        chunks = []
        with torch.no_grad():
            for first in range(0, len(images), self.batch_size):
                batch = torch.stack([self._tensor(i) for i in images[first:first + self.batch_size]]).to(self.device)
                chunks.append(self.model(batch).double().cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, 2048))


# --- reference statistics, cached by content -------------------------------------------------
def local_input_problems(name: str, path: str | None, kind: str = "file") -> list[str]:
    """'<name>: <kind> not found: <path>' unless `path` is an existing file (or folder), or may be absent here
    (`distillbench run --check` of a recipe written for another machine)."""
    exists = bool(path) and (Path(path).is_file() if kind == "file" else Path(path).is_dir())
    return [] if exists or (path and absent_allowed(path)) else [f"{name}: {kind} not found: {path}"]


def _keyed_when_set():
    return field(default=None, kw_only=True, metadata={KEY_MARKER: WHEN_SET})


@dataclass(frozen=True)
class GeneratedImageOutputs:
    """Mixin of the image benchmarks: an output is the path of one generated image. The sampling options
    (None: the row's, or the pipeline's default) let one board score a trained student at 1, 2 and 4 steps;
    they enter a benchmark's key only when set."""

    steps: int | None = _keyed_when_set()
    guidance: float | None = _keyed_when_set()
    sampler: Literal["ddim", "euler"] | None = _keyed_when_set()

    def predict(self, model, tokenizer, items, *, batch_size):
        """The path of one image per item, written by `model`: the text-to-image kind's sampler
        (`kinds.diffusion.text_to_image.Sampler`), which reuses the images it made for the same prompts and
        settings."""
        return model.images(items, batch_size=batch_size, **self.sampling())

    def sampling(self) -> dict[str, Any]:
        """The sampling options this benchmark sets (those left at None are not passed)."""
        chosen = {"steps": self.steps, "guidance": self.guidance, "sampler": self.sampler}
        return {name: value for name, value in chosen.items() if value is not None}

    @staticmethod
    def image_path(item, output) -> str:
        """`output` when it is the path of an existing file; a clear error otherwise."""
        if not isinstance(output, str) or not Path(output).is_file():
            raise UserInputError(f"{item['id']}: the output must be the path of an image file, got {output!r}")
        return output


def content_hash(images: Sequence[np.ndarray]) -> str:
    """sha256 of the set of images (shape, dtype and pixels of each; order does not matter)."""
    digests = sorted(hashlib.sha256(f"{a.shape}{a.dtype}".encode() + np.ascontiguousarray(a).tobytes()).hexdigest()
                     for a in (np.asarray(i) for i in images))
    return hashlib.sha256("".join(digests).encode()).hexdigest()


def load_images(folder: str | Path) -> list[np.ndarray]:
    """Every image file of `folder` (recursively, sorted), as RGB uint8 arrays (``.npy`` as saved)."""
    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    return [load_image(path) for path in paths]


def load_image(path: str | Path) -> np.ndarray:
    """One image file as an RGB uint8 array (``.npy`` as saved)."""
    from PIL import Image

    path = Path(path)
    if path.suffix.lower() == ".npy":
        return np.load(path)
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@dataclass(frozen=True)
class ReferenceStatistics:
    mu: np.ndarray
    sigma: np.ndarray
    features: np.ndarray  # kept for KID
    reference_hash: str
    extractor: dict[str, Any]

    @property
    def count(self) -> int:
        return len(self.features)


def stats_cache_dir() -> Path:
    return user_cache_dir() / "image-stats"


def reference_statistics(images: Sequence[np.ndarray], extractor: FeatureExtractor,
                         cache_dir: str | Path | None = None) -> ReferenceStatistics:
    """μ, Σ and features of a reference set, from the cache when this (content, extractor) was seen."""
    reference_hash = content_hash(images)
    key = hashlib.sha256(json.dumps([reference_hash, extractor.identity], sort_keys=True).encode()).hexdigest()[:24]
    directory = Path(cache_dir) if cache_dir else stats_cache_dir()
    path = directory / f"{key}.npz"
    if path.is_file():
        with np.load(path) as cached:
            return ReferenceStatistics(cached["mu"], cached["sigma"], cached["features"], reference_hash,
                                       extractor.identity)
    features = _as_features(extractor(images))
    mu, sigma = feature_statistics(features)
    directory.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{key}-", suffix=".npz", dir=directory)
    with os.fdopen(handle, "wb") as stream:
        np.savez(stream, mu=mu, sigma=sigma, features=features)
    os.replace(staging, path)
    return ReferenceStatistics(mu, sigma, features, reference_hash, extractor.identity)


# --- numbers with their protocol -------------------------------------------------------------
def _version(package: str) -> str | None:
    try:
        return package_metadata.version(package)
    except package_metadata.PackageNotFoundError:
        return None


def protocol(metric: str, reference: ReferenceStatistics, samples: int, **settings: Any) -> dict[str, Any]:
    """What a reader needs to compare this number with another."""
    return {"metric": metric, "library": f"distillbench.benchmarks.image_metrics {_version('distillbench')}",
            "agrees_with": {"clean-fid": _version("clean-fid"), "torchmetrics": _version("torchmetrics")},
            "numerics": SQRT_METHOD if metric == "fid" else KERNEL, **reference.extractor,
            "samples": samples, "reference_samples": reference.count, "reference_hash": reference.reference_hash,
            **settings}


def features_for(images: Sequence[np.ndarray], extractor: FeatureExtractor,
                 reference: ReferenceStatistics) -> np.ndarray:
    """Features of generated images, by the extractor the reference statistics were computed with."""
    if extractor.identity != reference.extractor:
        raise ValueError("the reference statistics were computed with another extractor")
    return _as_features(extractor(images))


def fid(features, reference: ReferenceStatistics) -> dict[str, Any]:
    """FID of generated features against a reference set, with its protocol."""
    features = _as_features(features)
    value = frechet_distance(*feature_statistics(features), reference.mu, reference.sigma)
    return {"value": value, "protocol": protocol("fid", reference, len(features))}


def kid(features, reference: ReferenceStatistics, num_subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> dict[str, Any]:
    """KID (mean and std over subsets) of generated features against a reference set, with its protocol."""
    features = _as_features(features)
    mean, std = kid_from_features(reference.features, features, num_subsets, subset_size, seed)
    used = min(len(features), reference.count, subset_size)
    return {"value": mean, "std": std,
            "protocol": protocol("kid", reference, len(features), subsets=num_subsets, subset_size=used, seed=seed)}


# --- command line -----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distillbench.benchmarks.image_metrics",
                                     description="FID and KID of a folder of generated images against a reference folder.")
    parser.add_argument("--reference", required=True, help="folder of reference images (statistics cached by content)")
    parser.add_argument("--generated", required=True, help="folder of generated images")
    parser.add_argument("--extractor", choices=["pocket", "clean-fid-inception"], default="pocket")
    parser.add_argument("--weights", help="pocket: feature-net folder (default: shipped); "
                                          "clean-fid-inception: folder with inception-2015-12-05.pt")
    parser.add_argument("--mode", choices=["clean", "legacy_tensorflow"], default="clean", help="clean-fid resize mode")
    parser.add_argument("--kid-subsets", type=int, default=100)
    parser.add_argument("--kid-subset-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.extractor == "pocket":
            extractor = POCKET_NETWORKS.get("shapes-features")(args.weights)
        else:
            if not args.weights:
                raise ValueError("--weights is required for clean-fid-inception")
            extractor = CleanFIDInception(args.weights, args.mode)
        reference = reference_statistics(load_images(args.reference), extractor)
        features = features_for(load_images(args.generated), extractor, reference)
        results = {"fid": fid(features, reference),
                   "kid": kid(features, reference, args.kid_subsets, args.kid_subset_size, args.seed)}
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
