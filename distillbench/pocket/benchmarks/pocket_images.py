"""The pocket instances of the image benchmarks: pocket-geneval, pocket-fid, pocket-kid and pocket-clip-score.

Their items are test-split pocket-shapes scenes (`distillbench.pocket.shapes`): GenEval-format prompts over
circles, squares and triangles, scored by the programmatic shapes detector; captions whose reference set is
the same scenes rendered, for FID and KID with the pocket feature network (the COCO protocol in miniature);
and the same captions for the CLIP score with the pocket CLIP (`distillbench.pocket.shapes_clip`, the
open_clip architecture). Each scores as its real benchmark does (`distillbench.benchmarks.geneval`,
`image_sets`, `clip_score`), with the same code.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import torch
from annotated_types import Ge, Gt

from distillbench.benchmarks import geneval
from distillbench.benchmarks.base import Benchmark, ItemScore, register_benchmark
from distillbench.benchmarks.clip_score import Convention, _ScoredByClip
from distillbench.benchmarks.geneval import _detector, _ScoredByGenEval
from distillbench.benchmarks.image_metrics import GeneratedImageOutputs, load_image
from distillbench.benchmarks.image_sets import _extractor, _ImageSetMetric
from distillbench.core.recipe import KEY_MARKER, WHEN_SET
from distillbench.pocket import shapes_clip, shapes_text
from distillbench.pocket.shapes_features import resized
from distillbench.pocket.shapes import COLORS, SHAPES, WORLD_VERSION, evaluation_metadata, generate

_POCKET = "test-split pocket-shapes captions; reference = the same scenes rendered; pocket feature network"


@register_benchmark("pocket-geneval", family="image", paper="GenEval rules (arXiv:2310.11513), pocket world",
                    summary="GenEval's rules on pocket-shapes prompts, scored by the programmatic shapes detector")
@dataclass(frozen=True)
class PocketGenEval(_ScoredByGenEval, Benchmark):
    """GenEval-format prompts over circles, squares and triangles in GenEval's ten colours."""

    per_tag: Annotated[int, Gt(0)] = 24
    seed: int = 0

    def _prompts(self):
        return evaluation_metadata(self.per_tag, self.seed)

    def _scorers(self):
        return _detector("pocket", None, "", None, "cpu")

    def protocol(self):
        return {**geneval.protocol("pocket", self.rules), "scorer_version": self.scorer_version,
                "samples_per_prompt": self.samples_per_prompt, "per_tag": self.per_tag, "seed": self.seed,
                "world_version": WORLD_VERSION}


@register_benchmark("pocket-negative", family="image", paper="negative prompts (SNOOPI's NASA, arXiv:2412.02687), "
                    "pocket world", summary="a shape prompt with a colour to avoid: is the shape drawn, and is no "
                    "object in that colour (the pocket shapes detector)")
@dataclass(frozen=True)
class PocketNegative(GeneratedImageOutputs, Benchmark):
    """'a photo of a <shape>' with the negative prompt '<colour>', for every shape and every GenEval colour,
    `samples_per_pair` images each (the prompt names no colour, so a model draws each colour at its own rate). Per
    image, from the pocket detector's objects above GenEval's 0.3 confidence: ``present`` (an object of the
    shape), ``avoided`` (no object of the negative colour) and ``correct`` (both). Without steering, ``avoided``
    is one minus the rate of the colour; a negative prompt that works raises it at equal ``present``."""

    samples_per_pair: Annotated[int, Gt(0)] = 4
    threshold: Annotated[float, Ge(0)] = 0.3

    binary_metrics = ("correct", "present", "avoided")

    def items(self):
        return [{"id": f"{shape}-{colour}/{sample}", "prompt": f"a photo of a {shape}", "negative": colour,
                 "shape": shape, "colour": colour}
                for shape in SHAPES for colour in COLORS for sample in range(self.samples_per_pair)]

    def score(self, item, output):
        detector, _ = _detector("pocket", None, "", None, "cpu")
        found = [d for d in detector(load_image(self.image_path(item, output))) if d.score > self.threshold]
        present = any(d.label == item["shape"] for d in found)
        avoided = not any(d.color == item["colour"] for d in found)
        kinds = ", ".join(f"{d.color} {d.label}" for d in found) or "nothing"
        return ItemScore({"correct": float(present and avoided), "present": float(present),
                          "avoided": float(avoided)}, f"found {kinds}")

    def protocol(self):
        return {"scorer_version": self.scorer_version, "detector": "pocket-shapes detector",
                "threshold": self.threshold, "samples_per_pair": self.samples_per_pair, "world_version": WORLD_VERSION}


@dataclass(frozen=True)
class _PocketImageSet(_ImageSetMetric):
    # the size the reference scenes are rendered at: the generated images' (both resized alike by the feature net)
    image_size: int = field(default=32, kw_only=True, metadata={KEY_MARKER: WHEN_SET})

    def _scenes(self):
        return generate("test", self.samples, seed=self.seed, image_size=self.image_size)

    def items(self):
        return [{"id": f"{index:05}", "prompt": scene.caption} for index, scene in enumerate(self._scenes())]

    def reference_images(self):
        return [scene.render() for scene in self._scenes()]

    def extractor(self):
        return _extractor("pocket", self.feature_net, "clean")


@register_benchmark("pocket-fid", family="image", paper="FID (arXiv:1706.08500), pocket world",
                    summary=f"FID on pocket-shapes: {_POCKET}")
@dataclass(frozen=True)
class PocketFID(_PocketImageSet, Benchmark):
    samples: Annotated[int, Gt(1)] = 200
    seed: int = 0
    feature_net: str | None = None  # default: the shipped pocket feature network
    ci_resamples: Annotated[int, Ge(0)] = 100
    metric = "fid"
    set_metrics = ("fid",)
    lower_is_better = ("fid",)


@register_benchmark("pocket-kid", family="image", paper="KID (arXiv:1801.01401), pocket world",
                    summary=f"KID on pocket-shapes: {_POCKET}")
@dataclass(frozen=True)
class PocketKID(_PocketImageSet, Benchmark):
    samples: Annotated[int, Gt(1)] = 200
    seed: int = 0
    feature_net: str | None = None
    kid_subsets: Annotated[int, Gt(0)] = 100
    kid_subset_size: Annotated[int, Gt(1)] = 1000
    ci_resamples: Annotated[int, Ge(0)] = 100
    metric = "kid"
    set_metrics = ("kid",)
    lower_is_better = ("kid",)


class PocketClipEmbedder:
    """The pocket CLIP (open_clip's CLIP class) with the pocket-shapes tokenizer."""

    def __init__(self, directory: str | None = None):
        self.directory = Path(directory) if directory else shapes_clip.default_directory()
        self.model, self.tokenizer, self.config = shapes_clip.load(self.directory)

    def images(self, images) -> torch.Tensor:
        size = self.config["spec"]["image_size"]
        with torch.no_grad():
            return self.model.encode_image(shapes_clip.image_tensor([resized(image, size) for image in images]))

    def texts(self, texts: list[str]) -> torch.Tensor:
        with torch.no_grad():
            return self.model.encode_text(shapes_text.token_ids(self.tokenizer, texts))


@functools.lru_cache(maxsize=4)
def _embedder(directory: str | None) -> PocketClipEmbedder:
    return PocketClipEmbedder(directory)


@register_benchmark("pocket-clip-score", family="image", paper="CLIP score (arXiv:2104.08718), pocket world",
                    summary="CLIP score on pocket-shapes test captions with the pocket CLIP (open_clip architecture)",
                    aliases=("pocket-clipscore",))
@dataclass(frozen=True)
class PocketClipScore(_ScoredByClip, Benchmark):
    samples: Annotated[int, Gt(0)] = 200
    seed: int = 0
    convention: Convention = "torchmetrics"
    prefix: str = ""
    clip: str | None = None  # default: the shipped pocket CLIP

    def items(self):
        return [{"id": f"{index:05}", "prompt": scene.caption}
                for index, scene in enumerate(generate("test", self.samples, seed=self.seed))]

    def _embedder(self):
        return _embedder(self.clip)

    def protocol(self):
        config = self._embedder().config
        return self._protocol(model="pocket-shapes-clip (open_clip CLIP class)", weights_sha256=config["weights_sha256"],
                              spec_hash=config["spec_hash"],
                              preprocessing="32x32 (other sizes: PIL bicubic on uint8); mean 0.5, std 0.25")
