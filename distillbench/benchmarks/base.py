"""The benchmark contract.

A benchmark is a registered dataclass whose fields are its options. It has a
versioned dataset source, `items()` (each with a stable ``id``), `predict`
(model → one output per item, batched) and `score` (one item + one output →
numbers and a reason, pure). Per-item scores are always kept.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from distillbench.core.registry import BENCHMARKS


def register_benchmark(name: str, *, family: str, paper: str = "", summary: str = "", aliases: tuple[str, ...] = ()):
    return BENCHMARKS.register(name, family=family, paper=paper, summary=summary, aliases=aliases)


@dataclass(frozen=True)
class ItemScore:
    """The numbers one output earns on one item, and why (auditable per item)."""

    values: dict[str, float]
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Benchmark(ABC):
    # Bump when scoring rules change, so stored results are not silently mixed.
    scorer_version: ClassVar[str] = "1"
    # Metrics that are 0/1 per item (McNemar applies); others are continuous.
    binary_metrics: ClassVar[tuple[str, ...]] = ()
    # Every metric has a direction: higher is better unless it is listed here. Metrics where a drop is an
    # improvement (the regression gate, the claims and the plots read this):
    lower_is_better: ClassVar[tuple[str, ...]] = ()
    # Metrics with no better direction (POPE's yes-ratio, VideoHallucer's yes/no differences): a bias
    # measure, good when near the value a perfect model gives (`ideal_values`), not when high or low.
    # The gate reads them two-sided, as the distance from that value where there is one.
    no_direction: ClassVar[tuple[str, ...]] = ()
    # Corpus metrics that are a ratio of sums over items, not a mean of per-item values (POPE
    # precision = ΣTP/Σ(TP+FP), CHAIRi = Σhallucinated/Σmentions): metric -> (numerator, denominator),
    # two components each item carries in its values, named as parts (``f1.num``, ``f1.den``). The
    # leaderboard shows Σnum/Σden (0 where Σden is 0) with a bootstrap CI, never the parts themselves.
    ratio_metrics: ClassVar[dict[str, tuple[str, str]]] = {}
    # Macro means: metric -> the metrics (per-item or ratio) whose plain mean it is, over those that have
    # items (POPE's average F1 over its three splits; VideoHallucer's overall over its categories).
    macro_metrics: ClassVar[dict[str, tuple[str, ...]]] = {}
    # Set metrics (FID, KID): statistics of the whole set of outputs that no per-item value carries.
    # `score_set` computes them once per evaluation; the summary is stored with the evaluation and the
    # leaderboard reads it back instead of pooling items. Their CI (when defined) comes from `score_set`.
    set_metrics: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def items(self) -> list[dict[str, Any]]:
        """The benchmark's items, each with a stable string ``id``."""

    @abstractmethod
    def predict(self, model, tokenizer, items: list[dict[str, Any]], *, batch_size: int) -> list[str]:
        """One output per item (batched generation)."""

    @abstractmethod
    def score(self, item: dict[str, Any], output: str) -> ItemScore:
        """The numbers one output earns on one item, and why; a pure function."""

    def score_set(self, items: list[dict[str, Any]], outputs: list) -> dict[str, dict[str, Any]]:
        """Each of `set_metrics` over all outputs: {"mean", "ci95" (a [low, high] interval, or None: no CI
        defined), "n" (outputs used)}; how the CI is made belongs in `protocol`."""
        return {}

    def protocol(self) -> dict[str, Any]:
        """What a reader needs to know to compare this number with another: scorer, grader, settings."""
        return {"scorer_version": self.scorer_version}

    def check(self) -> list[str]:
        return []

    def ideal_values(self) -> dict[str, float]:
        """The value of each `no_direction` metric that has one: what a model answering every item
        correctly would score (computed from the items where it depends on them)."""
        return {}

    @classmethod
    def metric_definitions(cls) -> dict[str, Any]:
        """How per-item values become the leaderboard's metrics (the non-empty declarations above)."""
        declared = {"binary_metrics": list(cls.binary_metrics), "lower_is_better": list(cls.lower_is_better),
                    "no_direction": list(cls.no_direction),
                    "ratio_metrics": {name: list(parts) for name, parts in cls.ratio_metrics.items()},
                    "macro_metrics": {name: list(parts) for name, parts in cls.macro_metrics.items()},
                    "set_metrics": list(cls.set_metrics)}
        return {"binary_metrics": declared.pop("binary_metrics"), **{k: v for k, v in declared.items() if v}}
