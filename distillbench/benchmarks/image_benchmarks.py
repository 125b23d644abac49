"""The registered image benchmarks: geneval (and pocket-geneval, in `distillbench.pocket.benchmarks.pocket_images`),
scored from image files.

An item is one image of one prompt (GenEval: 4 per prompt), id ``<prompt index:05>/<sample>``
as in GenEval's folder layout; its output is the path of the generated image (PNG), so the
contract's "one output string per item" holds and `distillbench score` grades images made
elsewhere. Each item carries ``correct`` and its tag's value; ``overall`` is the macro mean
over the tags (`macro_metrics`), GenEval's overall score. Scoring follows `geneval` exactly.

`predict` has the text-to-image kind's sampler make the images (`distillbench run` of a
``kind: text-to-image`` recipe); images made elsewhere are graded with `distillbench score`.
FID, KID and CLIP score are in `image_sets` and `clip_score`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from annotated_types import Ge, Gt

from distillbench.benchmarks import geneval
from distillbench.benchmarks.base import Benchmark, ItemScore, register_benchmark
from distillbench.benchmarks.geneval import TAGS, GenEvalRules
from distillbench.benchmarks.image_metrics import GeneratedImageOutputs
from distillbench.core.errors import UserInputError


@functools.lru_cache(maxsize=4)
def _detector(kind: str, model_path: str | None, clip_model: str, clip_pretrained: str | None, device: str,
              metadata: str | None = None):
    if kind == "pocket":
        return geneval.pocket_detector(), geneval.detection_colors
    detector = geneval.Mask2FormerDetector(model_path, device)
    try:
        detector.require(json.loads(line) for line in Path(metadata).read_text().splitlines() if line.strip())
    except ValueError as error:
        raise UserInputError(f"geneval: {error}") from None
    return detector, geneval.clip_color_classifier(clip_pretrained, clip_model, device)


class _ScoredByGenEval(GeneratedImageOutputs, ABC):
    """Items, scoring and protocol shared by the GenEval benchmarks (the fields live on each class)."""

    binary_metrics = ("correct", *TAGS)
    macro_metrics = {"overall": TAGS}

    @abstractmethod
    def _prompts(self) -> list[dict]:
        """GenEval prompt metadata records."""

    @property
    def rules(self):
        return GenEvalRules(self.threshold, self.counting_threshold, self.max_objects, self.max_overlap,
                                    self.position_threshold)

    def items(self):
        return [{"id": f"{index:05}/{sample}", "metadata": metadata}
                for index, metadata in enumerate(self._prompts()) for sample in range(self.samples_per_prompt)]

    def score(self, item, output):
        self.image_path(item, output)
        detector, classify_colors = self._scorers()
        image = geneval.load_image(output)
        record = geneval.score_detections(detector(image), item["metadata"], image, classify_colors, self.rules,
                                          output)
        correct = float(record["correct"])
        return ItemScore({"correct": correct, record["tag"]: correct}, record["reason"] or "correct",
                         {"details": json.loads(record["details"])})


@register_benchmark("geneval", family="image", paper="Ghosh et al. 2023, arXiv:2310.11513",
                    summary="GenEval: per-tag accuracy and overall (mean over the six tags) with GenEval's rules; "
                            "Mask2Former + CLIP colours from local paths")
@dataclass(frozen=True)
class GenEval(_ScoredByGenEval, Benchmark):
    """GenEval on its prompt metadata (``prompts/evaluation_metadata.jsonl``, a local path)."""

    metadata: str
    samples_per_prompt: Annotated[int, Gt(0)] = 4
    detector: Literal["mask2former", "pocket"] = "mask2former"
    model_path: str | None = None  # transformers Mask2Former folder
    clip_model: str = "ViT-L-14"
    clip_pretrained: str | None = None  # open_clip checkpoint file
    device: str = "cpu"
    threshold: Annotated[float, Ge(0)] = 0.3
    counting_threshold: Annotated[float, Ge(0)] = 0.9
    max_objects: Annotated[int, Gt(0)] = 16
    max_overlap: Annotated[float, Ge(0)] = 1.0
    position_threshold: Annotated[float, Ge(0)] = 0.1

    def check(self):
        problems = [] if Path(self.metadata).is_file() else [f"metadata: file not found: {self.metadata}"]
        if self.detector == "mask2former":
            for name in ("model_path", "clip_pretrained"):
                value = getattr(self, name)
                if not value or not Path(value).exists():
                    problems.append(f"{name}: a local path is required with detector mask2former, got {value!r}")
        return problems

    def _prompts(self):
        return [json.loads(line) for line in Path(self.metadata).read_text().splitlines() if line.strip()]

    def _scorers(self):
        return _detector(self.detector, self.model_path, self.clip_model, self.clip_pretrained, self.device,
                         self.metadata)

    def protocol(self):
        extra = {} if self.detector == "pocket" else {"model_path": self.model_path, "clip_model": self.clip_model,
                                                      "clip_pretrained": self.clip_pretrained,
                                                      "detector_input_size": geneval.mask2former_input_size(
                                                          self.model_path)}
        colors = "detector" if self.detector == "pocket" else "open_clip zero-shot"
        return {**geneval.protocol(self.detector, self.rules, colors, **extra), "scorer_version": self.scorer_version,
                "samples_per_prompt": self.samples_per_prompt,
                "metadata_hash": hashlib.sha256(Path(self.metadata).read_bytes()).hexdigest()[:16]}
