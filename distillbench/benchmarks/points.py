"""points-2d: a point sampler scored against the known mixture it was trained on (the 2-D pocket world).

Each item is one sample: the model's sampler draws item i from noise seeded by (seed, i), with the
benchmark's sampler, steps and guidance, so one trained student is scored at 1, 2 and 4 steps by three entries.
Per item, the point's negative log-likelihood under the true density and whether it is high quality (within
3σ of a mode); over the set, k-NN precision and recall against a fresh sample of the world, the share of
modes covered and the sliced W₂ (`sample_metrics`), and the sampler's cost in network evaluations per
sample (NFE). With `prompted`, item i carries prompt (class) i mod the world's classes and is scored against
that class's modes alone (a point on another class's mode is not high quality), its set metrics per class,
weighted by the class's items. Set metrics carry no interval yet: a board's seeds do.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
from annotated_types import Ge, Gt

from distillbench.benchmarks import sample_metrics
from distillbench.benchmarks.base import Benchmark, ItemScore, register_benchmark
from distillbench.kinds.diffusion.points import WORLD, Mixture, model_directory, sample_points


@functools.lru_cache(maxsize=4)
def world_of(ref: str) -> Mixture:
    """The world (target mixture) a point model folder, or a pocket point model, was trained on."""
    return Mixture.from_json(json.loads((model_directory(ref) / WORLD).read_text()))


@register_benchmark("points-2d", family="diffusion-points", paper="k-NN precision/recall: Kynkäänniemi et al. 2019",
                    summary="samples of a point model against its known mixture: NLL, high-quality share, "
                            "precision, recall, modes covered, sliced W2")
@dataclass(frozen=True)
class Points2D(Benchmark):
    world: str = "pocket:gaussians2d-teacher"  # the model folder (or pocket model) whose world.json is the target
    n: Annotated[int, Gt(3)] = 2000
    steps: Annotated[int, Gt(0)] = 1
    guidance: Annotated[float, Ge(1)] = 1.0
    # diffusers' deterministic solvers, or the (stochastic) multistep consistency sampler: points.SAMPLERS
    sampler: Literal["ddim", "dpm-solver++", "euler", "lcm"] = "ddim"
    seed: int = 0
    reference_seed: int = 1  # the real sample precision, recall and SWD compare with
    k: Annotated[int, Gt(0)] = 3
    # prompted: item i is drawn with prompt (class) i mod the world's classes, with the guidance above, and scored
    # against its class's modes; set metrics are per class, weighted by its items. False: the empty prompt
    prompted: bool = False

    scorer_version: ClassVar[str] = "2"  # 2: the nfe column
    binary_metrics: ClassVar[tuple[str, ...]] = ("high_quality",)
    lower_is_better: ClassVar[tuple[str, ...]] = ("nll", "sliced_w2", "nfe")
    set_metrics: ClassVar[tuple[str, ...]] = ("precision", "recall", "modes", "sliced_w2", "nfe")

    def items(self) -> list[dict[str, Any]]:
        if not self.prompted:
            return [{"id": str(index)} for index in range(self.n)]
        classes = world_of(self.world).class_count
        return [{"id": str(index), "class": index % classes} for index in range(self.n)]

    def predict(self, model, processor, items, *, batch_size: int) -> list[list[float]]:
        labels = torch.tensor([item["class"] for item in items]) if self.prompted else None
        points = sample_points(model, processor.scheduler_config, len(items), self.steps, self.seed, labels,
                               guidance=self.guidance, sampler=self.sampler)
        return (points.numpy() * processor.world.scale).tolist()

    def target(self, item) -> Mixture:
        """What an item is scored against: its class's modes when prompted, else the whole world."""
        world = world_of(self.world)
        return world.given(item["class"]) if self.prompted else world

    def score(self, item, output) -> ItemScore:
        world = self.target(item)
        point = np.asarray([output], dtype=float)
        nll = float(-world.log_density(point)[0])
        distance = float(np.linalg.norm(np.asarray(world.means) - point, axis=1).min())
        return ItemScore({"nll": nll, "high_quality": float(distance <= 3 * world.std)},
                         f"nearest mode{' of its class' if self.prompted else ''} at {distance:.3f} "
                         f"({distance / world.std:.1f}σ)")

    def score_set(self, items, outputs) -> dict[str, dict[str, Any]]:
        points = np.asarray(outputs, dtype=float)
        if self.prompted:  # each class's points against its own modes, weighted by its share of the items
            labels = np.asarray([item["class"] for item in items])
            parts = [(np.mean(labels == label), self._set_values(points[labels == label], self.target(item)))
                     for label, item in {item["class"]: item for item in items}.items()]
            values = {name: float(sum(share * part[name] for share, part in parts)) for name in parts[0][1]}
        else:
            values = self._set_values(points, world_of(self.world))
        # the cost column: network evaluations per sample (two per step with guidance)
        values["nfe"] = float(self.steps * (2 if self.guidance != 1.0 else 1))
        return {name: {"mean": value, "ci95": None, "n": len(points)} for name, value in values.items()}

    def _set_values(self, points: np.ndarray, world: Mixture) -> dict[str, float]:
        """Precision, recall, modes covered and sliced W₂ of `points` against a fresh sample of `world`."""
        real, _ = world.sample(len(points), seed=self.reference_seed)
        precision, recall = sample_metrics.precision_recall(real, points, self.k)
        coverage = sample_metrics.mode_coverage(points, np.asarray(world.means), np.asarray(world.weights), world.std)
        return {"precision": precision, "recall": recall, "modes": coverage["modes"],
                "sliced_w2": sample_metrics.sliced_wasserstein(real, points)}

    def protocol(self) -> dict[str, Any]:
        kind = "consistency, re-noised from seed + 1" if self.sampler == "lcm" else "deterministic"
        return {"scorer_version": self.scorer_version, "sampler": f"{self.sampler} ({kind}), trailing timesteps",
                "steps": self.steps, "guidance": self.guidance, "n": self.n, "seed": self.seed,
                "reference": f"{self.n} points of the world, seed {self.reference_seed}", "k": self.k,
                "modes": "covered with at least a quarter of the expected share within 3 sigma",
                "sliced_w2": "POT, 200 directions, seed 0",
                **({"prompts": "item i: class i mod the classes, scored against its class's modes; set metrics "
                               "per class, weighted by its items"} if self.prompted else {})}

