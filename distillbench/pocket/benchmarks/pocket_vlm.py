"""The pocket instances of the VLM benchmarks: pocket-vqa, pocket-pope, pocket-chair, pocket-videohallucer.

Their items come from the pocket-shapes VLM world (`distillbench.pocket.shapes_vlm`: test split
only, deterministic in the options) and their images are rendered in memory from each item's
scene. Each scores one item exactly as its real benchmark does, with the same function
(`score_vqa_item`, `score_pope_item`, `score_chair_item` with the pocket synonym table,
`score_videohallucer_item`) and declares the same pooled metrics, so a pocket number is computed
the way the official script computes the real one. ``distillbench score pocket-pope --predictions
F`` looks the gold up by item id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from annotated_types import Gt

from distillbench.benchmarks.base import register_benchmark
from distillbench.benchmarks.vlm.benchmarks import (CHAIR, POPE, VideoHallucer, VideoPairBenchmark, VisionBenchmark,
                                                    VQAv2, pope_yes_shares, score_chair_item, score_pope_item,
                                                    score_vqa_item)
from distillbench.benchmarks.vlm.videohallucer import INSTRUCTION, prompt as video_prompt
from distillbench.core.recipe import stable_hash
from distillbench.kinds.vlm.models import VisionRequest
from distillbench.pocket import shapes_vlm
from distillbench.pocket.shapes import WORLD_VERSION

WORLD = "pocket-shapes VLM world (distillbench.pocket.shapes_vlm)"


def _world_protocol(benchmark, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"world": WORLD, "world_version": WORLD_VERSION, "split": "test", "items": len(items),
            "items_hash": stable_hash(items), "decoding": "greedy", "max_new_tokens": benchmark.max_new_tokens}


def _image(scene: list[list]):
    return shapes_vlm.render_payload(scene)


@register_benchmark("pocket-vqa", family="vlm", paper="VQAv2 rules (arXiv:1612.00837), pocket world",
                    summary="VQAv2 accuracy (vqaEval.py rules, 10 rule-made annotator answers) on pocket-shapes "
                            "questions about shape, colour, count and position")
@dataclass(frozen=True)
class PocketVQA(VisionBenchmark):
    """Shape, colour, count, left/right and relation questions on pocket-shapes test images."""

    n: Annotated[int, Gt(0)] = 150  # images; up to per_image questions each
    per_image: Annotated[int, Gt(0)] = 3
    seed: int = 0
    rules: Literal["2021", "2017"] = "2021"
    prompt: str = shapes_vlm.QUESTION_PROMPT  # a real VLM: LLaVA-1.5's SHORT_ANSWER
    max_new_tokens: Annotated[int, Gt(0)] = 16

    binary_metrics = VQAv2.binary_metrics

    def items(self):
        return shapes_vlm.vqa_items(self.n, self.seed, self.per_image)

    def requests(self, items):
        return [VisionRequest((_image(item["scene"]),), self.prompt.format(question=item["question"]))
                for item in items]

    def score(self, item, output):
        return score_vqa_item(item, output, self.rules)

    def protocol(self):
        return {"scorer_version": self.scorer_version,
                "scorer": f"GT-Vision-Lab/VQA vqaEval.py ({self.rules} rules), unrounded 0..1; annotators by rule",
                "prompt": self.prompt, "n": self.n, "per_image": self.per_image, "seed": self.seed,
                **_world_protocol(self, self.items())}


@register_benchmark("pocket-pope", family="vlm", paper="POPE protocol (arXiv:2305.10355), pocket world",
                    summary="POPE on pocket-shapes: 'Is there a <colour> <shape> in the image?' with random, popular "
                            "and adversarial negatives from the world's object statistics")
@dataclass(frozen=True)
class PocketPOPE(VisionBenchmark):
    """POPE's existence questions on pocket-shapes test images, negatives sampled as POPE samples them."""

    n: Annotated[int, Gt(0)] = 100  # images per split (the same images in each split)
    per_image: Annotated[int, Gt(0)] = 3  # present objects asked per image (and as many absent ones)
    splits: tuple[Literal["random", "popular", "adversarial"], ...] = ("random", "popular", "adversarial")
    seed: int = 0
    prompt: str = shapes_vlm.QUESTION_PROMPT  # a real VLM: LLaVA-1.5's SHORT_ANSWER
    max_new_tokens: Annotated[int, Gt(0)] = 16

    binary_metrics = POPE.binary_metrics
    ratio_metrics = POPE.ratio_metrics
    macro_metrics = POPE.macro_metrics
    no_direction = POPE.no_direction

    def items(self):
        return shapes_vlm.pope_items(self.n, self.seed, tuple(self.splits), self.per_image)

    def ideal_values(self):
        return pope_yes_shares(self.items())

    def requests(self, items):
        return [VisionRequest((_image(item["scene"]),), self.prompt.format(question=item["text"])) for item in items]

    def score(self, item, output):
        return score_pope_item(item, output)

    def protocol(self):
        return {"scorer_version": self.scorer_version,
                "scorer": "AoiDragon/POPE evaluate.py (first sentence, negation words No/not/no); yes-ratio of "
                          "predictions; average = mean over the splits scored",
                "prompt": self.prompt, "n": self.n, "per_image": self.per_image, "splits": list(self.splits),
                "seed": self.seed, "statistics": f"object frequency and co-occurrence over "
                                                 f"{shapes_vlm.STATISTICS_POOL} train scenes",
                **_world_protocol(self, self.items())}


@register_benchmark("pocket-chair", family="vlm", paper="CHAIR rules (arXiv:1809.02156), pocket world",
                    summary="CHAIRs, CHAIRi and recall of pocket-shapes captions (chair.py rules with a pocket "
                            "synonym table of colour × shape words)")
@dataclass(frozen=True)
class PocketCHAIR(VisionBenchmark):
    """CHAIR on captions of pocket-shapes test images, objects named by colour and shape."""

    n: Annotated[int, Gt(0)] = 200
    seed: int = 0
    prompt: str = shapes_vlm.DESCRIBE
    max_new_tokens: Annotated[int, Gt(0)] = 160
    drop_incomplete_sentence: bool = False

    binary_metrics = CHAIR.binary_metrics
    lower_is_better = CHAIR.lower_is_better
    ratio_metrics = CHAIR.ratio_metrics

    def items(self):
        return shapes_vlm.chair_items(self.n, self.seed)

    def requests(self, items):
        return [VisionRequest((_image(item["scene"]),), self.prompt) for item in items]

    def score(self, item, output):
        return score_chair_item(item, output, self.drop_incomplete_sentence, shapes_vlm.chair_vocabulary())

    def protocol(self):
        return {"scorer_version": self.scorer_version,
                "scorer": "CHAIR, LisaAnne/Hallucination utils/chair.py rules",
                "synonyms": f"pocket-shapes: {len(shapes_vlm.OBJECTS)} colour-shape categories, colour × shape "
                            "synonym words", "recall": "micro, as OPERA and lmms-eval",
                "prompt": self.prompt, "n": self.n, "seed": self.seed,
                "drop_incomplete_sentence": self.drop_incomplete_sentence, **_world_protocol(self, self.items())}


@register_benchmark("pocket-videohallucer", family="vlm", paper="VideoHallucer protocol (arXiv:2406.16338), pocket world",
                    summary="VideoHallucer pairs on clips of moving pocket shapes: object relation, motion direction, "
                            "colour detail; basic, hallucinated and pair accuracy, overall, bias")
@dataclass(frozen=True)
class PocketVideoHallucer(VideoPairBenchmark):
    """Basic/hallucinated yes-no pairs on short clips of moving pocket shapes."""

    n: Annotated[int, Gt(0)] = 100  # pairs per category
    categories: tuple[Literal["obj_rel", "temporal", "semantic"], ...] = ("obj_rel", "temporal", "semantic")
    seed: int = 0
    max_new_tokens: Annotated[int, Gt(0)] = 16

    binary_metrics = VideoHallucer.binary_metrics
    lower_is_better = VideoHallucer.lower_is_better
    no_direction = VideoHallucer.no_direction
    ratio_metrics = VideoHallucer.ratio_metrics
    macro_metrics = VideoHallucer.macro_metrics
    ideal_values = VideoHallucer.ideal_values

    def items(self):
        return shapes_vlm.videohallucer_items(self.n, self.seed, tuple(self.categories))

    def requests(self, items):
        requests = []
        for item in items:
            frames = tuple(_image(frame) for frame in item["frames"])
            for side in ("basic", "hallucination"):
                requests.append(VisionRequest(frames, video_prompt(item[side]["question"])))
        return requests


    def protocol(self):
        return {"scorer_version": self.scorer_version,
                "scorer": "patrick-tssn/VideoHallucer evaluation_utils.py (whole-word yes/no regex); overall = mean "
                          "over the categories scored; bias as evaluation_bias.py, pooled over them",
                "instruction": INSTRUCTION, "frames": shapes_vlm.FRAMES, "n": self.n,
                "categories": list(self.categories), "seed": self.seed, **_world_protocol(self, self.items())}
