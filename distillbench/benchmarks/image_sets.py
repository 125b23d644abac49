"""FID and KID as registered benchmarks: set metrics of the images generated for a prompt set.

An item is one prompt (``id``, ``prompt``); its output is the path of the image generated for
it (PNG), as for GenEval, so `distillbench score` grades a folder made elsewhere. Per item
there is nothing to score but the file; the metric is a statistic of the whole set of
features against a reference set (`Benchmark.score_set`, `image_metrics.fid` / `kid`).

CI (`subsample_interval`): half-sampling without replacement, the reference statistics held fixed
(`ci_resamples` subsamples; 0 gives no CI, stored as ``ci95: null``). A with-replacement bootstrap
duplicates images, and FID grows as its sample shrinks in effect (FID_N ≈ FID_∞ + k/N, Chong &
Forsyth 2020, arXiv:1911.07023), so its percentile interval sat above the point value. It measures
the sampling noise of the generated set only: read it as the spread a new draw of the prompts'
samples (as many) would give, not as a test against the reference. It assumes the statistic is
asymptotically normal, which FID and KID are when the two distributions differ; at a true distance
of 0 (a perfect model) they converge faster and the interval is only indicative.

* ``fid`` / ``kid``: a JSONL of prompts (``id``, ``prompt``: e.g. 30k COCO-2014 val captions for
  the GigaGAN/DMD2 protocol) and a folder of reference images; clean-fid's Inception from a local
  folder (``clean`` or ``legacy_tensorflow`` resize), or the pocket network.
* ``pocket-fid`` / ``pocket-kid`` (`distillbench.pocket.benchmarks.pocket_images`): test-split
  pocket-shapes scenes; the prompts are their captions and the reference set is the same scenes
  rendered (the COCO protocol in miniature); features from the pocket feature network.
"""

from __future__ import annotations

import functools
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from annotated_types import Ge, Gt

from distillbench.core.errors import UserInputError
from distillbench.core.registry import POCKET_NETWORKS

from distillbench.benchmarks import image_metrics
from distillbench.benchmarks.base import Benchmark, ItemScore, register_benchmark
from distillbench.benchmarks.image_metrics import GeneratedImageOutputs


def subsample_interval(statistic, features: np.ndarray, point: float, resamples: int, seed: int = 0,
                       level: float = 0.95) -> list[float] | None:
    """Subsampling interval for the full-sample value `point` of `statistic(features)`; None when
    `resamples` is 0.

    `resamples` subsets of b = ⌊n/2⌋ rows, drawn without replacement (Politis & Romano 1994, "Large
    sample confidence regions based on subsamples under minimal assumptions", Ann. Statist. 22(4)):
    the spread of θ_b − θ̄_b, scaled by √(b/(n−b)), estimates that of θ_n − E θ_n; the interval is
    [point − q_hi, point − q_lo] of those scaled deviations. √(b/(n−b)) is the delete-d jackknife's
    finite-population factor (Shao & Wu 1989, Ann. Statist. 17(3)), exact for a mean; with b = n/2 it
    is 1. Deviations are taken from the subsamples' own mean θ̄_b, not from θ_n, because FID is biased
    by O(1/size) and every half-sample shares the larger bias of size b: centring at θ_n would carry
    that shift into the interval.
    """
    if resamples == 0:
        return None
    n = len(features)
    size = n // 2
    rng = np.random.default_rng(seed)
    values = np.array([statistic(features[rng.choice(n, size, replace=False)]) for _ in range(resamples)])
    deviations = (values - values.mean()) * np.sqrt(size / (n - size))
    tail = (1 - level) / 2
    low, high = np.quantile(deviations, [tail, 1 - tail])
    return [float(point - high), float(point - low)]


@functools.lru_cache(maxsize=8)
def _extractor(kind: str, weights: str | None, mode: str):
    if kind == "pocket":
        return POCKET_NETWORKS.get("shapes-features")(weights)
    if not weights:
        raise UserInputError("weights: a folder holding inception-2015-12-05.pt is required with clean-fid-inception")
    return image_metrics.CleanFIDInception(weights, mode)


@functools.lru_cache(maxsize=8)
def _reference(benchmark) -> image_metrics.ReferenceStatistics:
    return image_metrics.reference_statistics(benchmark.reference_images(), benchmark.extractor())


class _ImageSetMetric(GeneratedImageOutputs, ABC):
    """Items, per-item checks, set scoring and protocol shared by the FID and KID benchmarks."""

    metric = ""  # "fid" or "kid"
    scorer_version = "2"  # 2: the CI is a half-sampling interval (was a with-replacement bootstrap)

    @abstractmethod
    def items(self):
        """One item per prompt to generate."""

    @abstractmethod
    def reference_images(self) -> list[np.ndarray]:
        """The reference set."""

    @abstractmethod
    def extractor(self):
        """The feature extractor."""

    def score(self, item, output):
        self.image_path(item, output)
        return ItemScore({}, "image read; the metric is a statistic of the whole set")

    def _statistic(self, reference):
        if self.metric == "fid":
            return lambda features: image_metrics.fid(features, reference)["value"]
        # A tenth of the subsets per resample keeps the interval affordable; with equal-sized sets of at
        # most subset_size samples every subset is the whole set, so the count does not matter there.
        subsets = max(1, self.kid_subsets // 10)
        return lambda features: image_metrics.kid(features, reference, subsets, self.kid_subset_size, self.seed)["value"]

    def score_set(self, items, outputs):
        reference = _reference(self)
        features = image_metrics.features_for([image_metrics.load_image(path) for path in outputs], self.extractor(),
                                              reference)
        if self.metric == "fid":
            result = image_metrics.fid(features, reference)
            extra = {}
        else:
            result = image_metrics.kid(features, reference, self.kid_subsets, self.kid_subset_size, self.seed)
            extra = {"std": result["std"]}
        interval = subsample_interval(self._statistic(reference), features, result["value"], self.ci_resamples,
                                      self.seed)
        return {self.metric: {"mean": result["value"], "ci95": interval, "n": len(features), **extra}}

    def protocol(self):
        settings = {"subsets": self.kid_subsets, "subset_size": self.kid_subset_size} if self.metric == "kid" else {}
        ci = (f"half-sampling without replacement over generated samples (Politis & Romano 1994), "
              f"{self.ci_resamples} subsamples of n/2, reference fixed" if self.ci_resamples else "none")
        return {**image_metrics.protocol(self.metric, _reference(self), len(self.items()), **settings),
                "scorer_version": self.scorer_version, "ci": ci, "seed": self.seed}


@dataclass(frozen=True)
class _ExternalImageSet(_ImageSetMetric):
    def check(self):
        problems = (image_metrics.local_input_problems("prompts", self.prompts)
                    + image_metrics.local_input_problems("reference", self.reference, "folder"))
        if self.extractor_kind == "clean-fid-inception" and (
                not self.weights or image_metrics.local_input_problems("weights", self.weights, "folder")):
            problems.append(f"weights: a folder holding inception-2015-12-05.pt is required, got {self.weights!r}")
        return problems

    def items(self):
        records = [json.loads(line) for line in Path(self.prompts).read_text().splitlines() if line.strip()]
        return [{"id": str(record["id"]), "prompt": record["prompt"]} for record in records]

    def reference_images(self):
        return image_metrics.load_images(self.reference)

    def extractor(self):
        return _extractor("pocket" if self.extractor_kind == "pocket" else "inception", self.weights, self.mode)


_EXTERNAL = "a JSONL of prompts (id, prompt) and a reference image folder; clean-fid Inception from a local folder"


@register_benchmark("fid", family="image", paper="Heusel et al. 2017, arXiv:1706.08500",
                    summary=f"FID of generated images against a reference set: {_EXTERNAL}")
@dataclass(frozen=True)
class FID(_ExternalImageSet, Benchmark):
    prompts: str
    reference: str
    weights: str | None = None  # folder with clean-fid's inception-2015-12-05.pt
    extractor_kind: Literal["clean-fid-inception", "pocket"] = "clean-fid-inception"
    mode: Literal["clean", "legacy_tensorflow"] = "clean"
    ci_resamples: Annotated[int, Ge(0)] = 0  # each costs an eigendecomposition of a 2048x2048 matrix
    seed: int = 0
    metric = "fid"
    set_metrics = ("fid",)
    lower_is_better = ("fid",)


@register_benchmark("kid", family="image", paper="Bińkowski et al. 2018, arXiv:1801.01401",
                    summary=f"KID (cubic-kernel MMD², clean-fid's subsets): {_EXTERNAL}")
@dataclass(frozen=True)
class KID(_ExternalImageSet, Benchmark):
    prompts: str
    reference: str
    weights: str | None = None
    extractor_kind: Literal["clean-fid-inception", "pocket"] = "clean-fid-inception"
    mode: Literal["clean", "legacy_tensorflow"] = "clean"
    kid_subsets: Annotated[int, Gt(0)] = 100
    kid_subset_size: Annotated[int, Gt(1)] = 1000
    ci_resamples: Annotated[int, Ge(0)] = 0
    seed: int = 0
    metric = "kid"
    set_metrics = ("kid",)
    lower_is_better = ("kid",)
