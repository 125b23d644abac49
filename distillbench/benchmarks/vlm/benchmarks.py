"""The registered vision-language benchmarks: vqav2, pope, chair, videohallucer.

Each reads its official files from local paths (its options), predicts with `kinds.vlm.models` (greedy,
batched, images from a local folder) and scores one item with the scorer module of the same name.
Corpus figures that are not means of per-item values are declared, not computed here: POPE's
precision, recall and F1 and CHAIR's CHAIRi and recall are ratios of sums over items
(`ratio_metrics`), POPE's average over its splits and VideoHallucer's overall over its
categories are macro means (`macro_metrics`); `core.item_metrics` pools them, so the
leaderboard's number is the official script's number, with a bootstrap CI over items. One item is
scored by a module function (`score_vqa_item`, `score_pope_item`, `score_chair_item`,
`score_videohallucer_item`), which the pocket instances (`pocket.py`) call too.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from annotated_types import Gt

from distillbench.core.errors import UserInputError

from distillbench.benchmarks.base import Benchmark, ItemScore, register_benchmark
from distillbench.benchmarks.vlm import chair, pope, videohallucer, vqa
from distillbench.kinds.vlm.models import VisionRequest, generate_vlm, load_image, video_frames

# LLaVA-1.5's short-answer instruction (its VQAv2 and POPE evaluation prompts).
SHORT_ANSWER = "{question}\nAnswer the question using a single word or phrase."


@functools.lru_cache(maxsize=64)
def _file_hash(path: str, mtime: float, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def file_fingerprint(path: str | Path) -> str:
    """sha256 (16 hex digits) of a data file, computed once per file version."""
    stat = Path(path).stat()
    return _file_hash(str(Path(path).resolve()), stat.st_mtime, stat.st_size)


def _require(path: str | None, option: str, what: str) -> Path:
    if not path:
        raise UserInputError(f"{option}: set it to {what} (e.g. --dataset {option}=PATH, or in the recipe)")
    if not Path(path).exists():
        raise UserInputError(f"{option}: not found: {path}")
    return Path(path)


class VisionBenchmark(Benchmark):
    """Shared by the VLM benchmarks: `predict` asks `kinds.vlm.models` for one greedy reply per request.

    `predict` receives the model and its processor (image processor + tokenizer) where language
    benchmarks receive the model and its tokenizer.
    """

    max_new_tokens: int

    @abstractmethod
    def requests(self, items: list[dict[str, Any]]) -> list:
        """The `VisionRequest`s of the items, one per item (VideoHallucer: two per item)."""

    def predict(self, model, processor, items, *, batch_size):
        return generate_vlm(model, processor, self.requests(items), max_new_tokens=self.max_new_tokens,
                            batch_size=batch_size, description=type(self).__name__.lower())

    def _image(self, folder: str | None, name: str):
        return load_image(_require(folder, "images", "the folder of the benchmark's images") / name)


# VQAv2 ---------------------------------------------------------------------------------------------

def score_vqa_item(item: dict[str, Any], output: str, rules: str) -> ItemScore:
    """One VQA question: leave-one-out accuracy over its ``answers``, overall and under its ``answer_type``."""
    accuracy = vqa.question_accuracy(output, item["answers"], rules=rules)
    prediction, answers = vqa.comparable_answers(output, item["answers"], rules=rules)
    return ItemScore({"accuracy": accuracy, f"accuracy[{item['answer_type']}]": accuracy},
                     f"prediction {prediction!r} matches {sum(a == prediction for a in answers)} of "
                     f"{len(answers)} human answers")


@register_benchmark("vqav2", family="vlm", paper="Goyal et al. 2017, arXiv:1612.00837",
                    summary="VQAv2 accuracy with the official vqaEval.py rules (leave-one-out over 10 answers), "
                            "per answer type")
@dataclass(frozen=True)
class VQAv2(VisionBenchmark):
    """VQAv2 open-ended accuracy on the official question and annotation files."""

    questions: str  # v2_OpenEnded_mscoco_<subtype>_questions.json
    annotations: str  # v2_mscoco_<subtype>_annotations.json
    images: str | None = None
    image_pattern: str = "COCO_val2014_{image_id:012d}.jpg"
    rules: Literal["2021", "2017"] = "2021"
    prompt: str = SHORT_ANSWER
    n: Annotated[int, Gt(0)] | None = None
    max_new_tokens: Annotated[int, Gt(0)] = 16

    def check(self):
        return [f"{option}: file not found: {path}" for option, path in
                (("questions", self.questions), ("annotations", self.annotations)) if not Path(path).is_file()]

    def items(self):
        return vqa.load_vqa(self.questions, self.annotations)[: self.n]

    def requests(self, items):
        return [VisionRequest((self._image(self.images, self.image_pattern.format(image_id=item["image_id"])),),
                              self.prompt.format(question=item["question"])) for item in items]

    def score(self, item, output):
        return score_vqa_item(item, output, self.rules)

    def protocol(self):
        return {"scorer_version": self.scorer_version,
                "scorer": f"GT-Vision-Lab/VQA vqaEval.py ({self.rules} rules), unrounded 0..1",
                "prompt": self.prompt, "decoding": "greedy", "max_new_tokens": self.max_new_tokens, "n": self.n,
                "questions_hash": file_fingerprint(self.questions),
                "annotations_hash": file_fingerprint(self.annotations)}


# POPE ----------------------------------------------------------------------------------------------

POPE_RATIOS = ("precision", "recall", "f1")


def score_pope_item(item: dict[str, Any], output: str) -> ItemScore:
    """One POPE question of ``split`` with ``label``: the official parse, and the item's share of the
    split's confusion counts (accuracy and yes-ratio per item; precision, recall, F1 as ratio parts)."""
    split, predicted = item["split"], pope.parse_yes_no(output)
    yes, gold_yes = predicted == "yes", item["label"] == "yes"
    tp, fp, fn = int(yes and gold_yes), int(yes and not gold_yes), int(not yes and gold_yes)
    values = {"accuracy": int(yes == gold_yes), "yes_ratio": int(yes),
              "precision.num": tp, "precision.den": tp + fp, "recall.num": tp, "recall.den": tp + fn,
              "f1.num": 2 * tp, "f1.den": 2 * tp + fp + fn}
    return ItemScore({f"{split}/{name}": float(value) for name, value in values.items()},
                     f"{split}: parsed {predicted!r}, label {item['label']!r}")


def pope_yes_shares(items: list[dict[str, Any]]) -> dict[str, float]:
    """The yes-ratio a model answering every question correctly gets: the share of gold "yes" per split,
    and their mean for the average (a mean over the splits, as the metric is)."""
    shares = {}
    for split in dict.fromkeys(item["split"] for item in items):
        labels = [item["label"] == "yes" for item in items if item["split"] == split]
        shares[f"{split}/yes_ratio"] = sum(labels) / len(labels)
    return {**shares, "average/yes_ratio": sum(shares.values()) / len(shares)} if shares else {}


@register_benchmark("pope", family="vlm", paper="Li et al. 2023, arXiv:2305.10355",
                    summary="POPE object hallucination: accuracy, precision, recall, F1, yes-ratio per split "
                            "and their average (official evaluate.py parsing)")
@dataclass(frozen=True)
class POPE(VisionBenchmark):
    """POPE yes/no object probing on the official question files, one per split."""

    questions: str  # folder with <dataset>_pope_<split>.json
    dataset: str = "coco"
    splits: tuple[Literal["random", "popular", "adversarial"], ...] = pope.SPLITS
    images: str | None = None
    prompt: str = SHORT_ANSWER
    n: Annotated[int, Gt(0)] | None = None  # the first n questions of each split
    max_new_tokens: Annotated[int, Gt(0)] = 128

    binary_metrics = tuple(f"{split}/{name}" for split in pope.SPLITS for name in ("accuracy", "yes_ratio"))
    ratio_metrics = {f"{split}/{name}": (f"{split}/{name}.num", f"{split}/{name}.den")
                     for split in pope.SPLITS for name in POPE_RATIOS}
    macro_metrics = {f"average/{name}": tuple(f"{split}/{name}" for split in pope.SPLITS) for name in pope.METRICS}
    # Saying yes more (or less) often is neither better nor worse: near the data's yes share is.
    no_direction = (*(f"{split}/yes_ratio" for split in pope.SPLITS), "average/yes_ratio")

    def ideal_values(self):
        return pope_yes_shares(self.items())

    def check(self):
        if not Path(self.questions).is_dir():
            return [f"questions: folder not found: {self.questions}"]
        try:
            pope.split_files(self.questions, self.dataset, self.splits)
        except UserInputError as exc:
            return [f"questions: {line}" for line in exc.problems]
        return []

    def items(self):
        items = []
        for split, path in pope.split_files(self.questions, self.dataset, self.splits).items():
            items += [{"id": f"{split}/{q['question_id']}", "split": split, **q}
                      for q in pope.load_questions(path)[: self.n]]
        return items

    def requests(self, items):
        return [VisionRequest((self._image(self.images, item["image"]),), self.prompt.format(question=item["text"]))
                for item in items]

    def score(self, item, output):
        return score_pope_item(item, output)

    def protocol(self):
        files = pope.split_files(self.questions, self.dataset, self.splits)
        return {"scorer_version": self.scorer_version,
                "scorer": "AoiDragon/POPE evaluate.py (first sentence, negation words No/not/no); yes-ratio of "
                          "predictions; average = mean over the splits scored",
                "prompt": self.prompt, "decoding": "greedy", "max_new_tokens": self.max_new_tokens, "n": self.n,
                "splits": list(self.splits), **{f"{split}_hash": file_fingerprint(path) for split, path in files.items()}}


# CHAIR ---------------------------------------------------------------------------------------------

def score_chair_item(item: dict[str, Any], output: str, drop_incomplete_sentence: bool = False,
                     vocabulary: chair.ObjectVocabulary = chair.COCO) -> ItemScore:
    """One caption against the image's ``ground_truth``: CHAIRs (0/1) and the parts of CHAIRi and recall."""
    caption = chair.drop_incomplete_sentence(output) if drop_incomplete_sentence else output
    record = chair.score_caption(caption, item["ground_truth"], vocabulary)
    values = {"chair_s": record["chair_s"], "chair_i.num": record["hallucinated_mentions"],
              "chair_i.den": record["mentions"], "recall.num": record["recalled"],
              "recall.den": record["ground_truth_size"]}
    hallucinated = ", ".join(f"{word}→{category}" for word, category in record["hallucinated"]) or "none"
    return ItemScore({name: float(value) for name, value in values.items()},
                     f"mentioned {record['mentioned']}; hallucinated: {hallucinated}")


@functools.lru_cache(maxsize=2)
def _coco(folder: str, stamp: tuple) -> tuple[dict, dict]:
    return chair.load_coco_annotations(folder)


def _coco_annotations(folder: str) -> tuple[dict, dict]:
    files = [p for paths in chair.coco_annotation_files(folder).values() for p in paths]
    return _coco(str(Path(folder).resolve()), tuple((p.name, p.stat().st_mtime, p.stat().st_size) for p in files))


def _image_ids(path: str) -> list[int]:
    """Image ids from a JSON list or a text file of one id a line."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        ids = json.loads(text) if text.lstrip().startswith("[") else [line.strip() for line in text.splitlines()
                                                                          if line.strip()]
        return [int(i) for i in ids]
    except (ValueError, TypeError) as exc:
        raise UserInputError(f"{path}: expected a JSON list of image ids or one id a line ({exc})") from None


@register_benchmark("chair", family="vlm", paper="Rohrbach et al. 2018, arXiv:1809.02156",
                    summary="CHAIR caption hallucination: CHAIRs, CHAIRi and recall against COCO objects "
                            "(official chair.py rules)")
@dataclass(frozen=True)
class CHAIR(VisionBenchmark):
    """CHAIRs, CHAIRi and object recall of detailed image captions on COCO 2014."""

    annotations: str  # folder with instances_val2014.json and captions_val2014.json (train2014 optional)
    image_ids: str | None = None  # JSON list or one id a line: the protocol's image set
    n: Annotated[int, Gt(0)] | None = None  # a random sample of n images (by seed) from that set
    seed: int = 0
    images: str | None = None
    prompt: str = "Please describe this image in detail."
    max_new_tokens: Annotated[int, Gt(0)] = 512
    drop_incomplete_sentence: bool = False  # OPERA's cut for short generations, applied before scoring

    binary_metrics = ("chair_s",)
    lower_is_better = ("chair_s", "chair_i")
    ratio_metrics = {"chair_i": ("chair_i.num", "chair_i.den"), "recall": ("recall.num", "recall.den")}

    def check(self):
        problems = [] if Path(self.annotations).is_dir() else [f"annotations: folder not found: {self.annotations}"]
        if self.image_ids and not Path(self.image_ids).is_file():
            problems.append(f"image_ids: file not found: {self.image_ids}")
        return problems

    def items(self):
        instances, captions = _coco_annotations(self.annotations)
        file_names = {image["id"]: image.get("file_name", "") for image in instances.get("images", [])}
        # Without a list, the val2014 images (the usual CHAIR protocol), even when train2014's annotations are
        # loaded too (their objects still count as ground truth, as the official code joins both).
        val2014 = [i for i, name in file_names.items() if "val2014" in name]
        ids = _image_ids(self.image_ids) if self.image_ids else sorted(val2014 or file_names)
        if self.n is not None:
            ids = sorted(random.Random(self.seed).sample(ids, min(self.n, len(ids))))
        truth = chair.ground_truth_objects(instances, captions, ids)
        return [{"id": str(i), "image_id": i, "file_name": file_names.get(i, ""), "ground_truth": sorted(truth[i])}
                for i in ids]

    def requests(self, items):
        missing = [item["image_id"] for item in items if not item["file_name"]]
        if missing:
            raise UserInputError(f"annotations: image {missing[0]} is not listed under 'images' (no file name)")
        return [VisionRequest((self._image(self.images, item["file_name"]),), self.prompt) for item in items]

    def score(self, item, output):
        return score_chair_item(item, output, self.drop_incomplete_sentence)

    def protocol(self):
        files = chair.coco_annotation_files(self.annotations)
        return {"scorer_version": self.scorer_version,
                **chair.protocol(max_new_tokens=self.max_new_tokens, prompt=self.prompt, images=self.images or "",
                                 drop_incomplete=self.drop_incomplete_sentence),
                "image_ids": self.image_ids, "n": self.n, "seed": self.seed,
                **({"image_ids_hash": file_fingerprint(self.image_ids)} if self.image_ids else {}),
                **{f"{path.stem}_hash": file_fingerprint(path) for paths in files.values() for path in paths}}


# VideoHallucer -------------------------------------------------------------------------------------

ALL_CATEGORIES = {**videohallucer.CATEGORIES, **videohallucer.EXTRA_CATEGORIES}
BIAS_RATIOS = ("false_positive_ratio", "hallucination_score")


class VideoPairBenchmark(VisionBenchmark):
    """A VideoHallucer-style suite: two requests per item (basic, hallucinated), scored as a pair."""

    def predict(self, model, processor, items, *, batch_size):
        replies = super().predict(model, processor, items, batch_size=batch_size)
        return [replies[2 * i: 2 * i + 2] for i in range(len(items))]  # [basic, hallucinated] per pair

    def score(self, item, output):
        return score_videohallucer_item(item, output)


@register_benchmark("videohallucer", family="vlm", paper="Wang et al. 2024, arXiv:2406.16338",
                    summary="VideoHallucer paired yes/no hallucination: basic, hallucinated and pair accuracy per "
                            "category, their macro mean, yes/no bias")
@dataclass(frozen=True)
class VideoHallucer(VideoPairBenchmark):
    """VideoHallucer basic/hallucinated question pairs on the official data folder."""

    data: str  # folder with <category>/<category>.json and <category>/videos/
    categories: tuple[Literal[tuple(ALL_CATEGORIES)], ...] = tuple(videohallucer.CATEGORIES)
    frames: Annotated[int, Gt(0)] = 8  # frames sampled uniformly from each video, shown as images
    n: Annotated[int, Gt(0)] | None = None  # the first n pairs of each category
    max_new_tokens: Annotated[int, Gt(0)] = 32

    binary_metrics = tuple(f"{category}/{name}" for category in ALL_CATEGORIES for name in
                           ("basic_accuracy", "halluc_accuracy", "accuracy"))
    lower_is_better = tuple(f"bias/{name}" for name in BIAS_RATIOS)
    # A lean towards yes (or no) is bad either way: a model answering every pair right says yes and no
    # once each per pair (the basic answer is always yes, the hallucinated one no), so both are 0.
    no_direction = ("bias/yes_difference", "bias/no_difference")
    ratio_metrics = {f"bias/{name}": (f"bias/{name}.num", f"bias/{name}.den") for name in BIAS_RATIOS}
    # The leaderboard's overall: the mean over the five main categories (those scored).
    macro_metrics = {f"overall/{name}": tuple(f"{category}/{name}" for category in videohallucer.CATEGORIES)
                     for name in videohallucer.METRICS}

    def ideal_values(self):
        return dict.fromkeys(self.no_direction, 0.0)

    def _file(self, category: str) -> Path:
        return Path(self.data) / ALL_CATEGORIES[category]

    def check(self):
        return [f"data: file not found: {self._file(c)}" for c in self.categories if not self._file(c).is_file()]

    def items(self):
        return [{"id": f"{category}/{index}", "category": category, **pair}
                for category in self.categories
                for index, pair in enumerate(videohallucer.load_pairs(self._file(category))[: self.n])]

    def requests(self, items):
        requests = []
        for item in items:
            folder = self._file(item["category"]).parent / "videos"
            for side in ("basic", "hallucination"):
                frames = tuple(video_frames(folder / item[side]["video"], self.frames))
                requests.append(VisionRequest(frames, videohallucer.prompt(item[side]["question"])))
        return requests


    def protocol(self):
        return {"scorer_version": self.scorer_version,
                "scorer": "patrick-tssn/VideoHallucer evaluation_utils.py (whole-word yes/no regex); overall = mean "
                          "over the main categories scored; bias as evaluation_bias.py, pooled over them",
                "instruction": videohallucer.INSTRUCTION, "frames": self.frames, "decoding": "greedy",
                "max_new_tokens": self.max_new_tokens, "n": self.n, "categories": list(self.categories),
                **{f"{c}_hash": file_fingerprint(self._file(c)) for c in self.categories}}


def score_videohallucer_item(item: dict[str, Any], output) -> ItemScore:
    """One pair of ``category``: basic, hallucinated and pair hits, and (main categories) its bias parts."""
    basic_prediction, hallucinated_prediction = _pair_output(output)
    hits = videohallucer.score_pair(item, basic_prediction, hallucinated_prediction)
    category = item["category"]
    values = {f"{category}/basic_accuracy": hits["basic"], f"{category}/halluc_accuracy": hits["hallucinated"],
              f"{category}/accuracy": hits["pair"]}
    if category in videohallucer.CATEGORIES and (item["basic"]["answer"], item["hallucination"]["answer"]) == (
            "yes", "no"):
        values.update(_bias_parts(basic_prediction, hallucinated_prediction))
    return ItemScore({name: float(value) for name, value in values.items()},
                     f"basic {'hit' if hits['basic'] else 'miss'} ({item['basic']['answer']}), hallucinated "
                     f"{'hit' if hits['hallucinated'] else 'miss'} ({item['hallucination']['answer']})")


def _pair_output(output) -> tuple[str, str]:
    """[basic, hallucinated] replies, or {"basic": ..., "hallucination": ...}."""
    if isinstance(output, dict) and {"basic", "hallucination"} <= set(output):
        return str(output["basic"]), str(output["hallucination"])
    if isinstance(output, (list, tuple)) and len(output) == 2:
        return str(output[0]), str(output[1])
    raise UserInputError("a VideoHallucer response is [basic reply, hallucinated reply] or "
                         "{\"basic\": ..., \"hallucination\": ...}")


def _bias_parts(basic_prediction: str, hallucinated_prediction: str) -> dict[str, float]:
    """One pair's share of evaluation_bias.py's counts: yes/no differences as per-pair means,
    the false-positive ratio and hallucination score as ratio parts."""
    basic, hallucinated = videohallucer.hit("yes", basic_prediction), videohallucer.hit("no", hallucinated_prediction)
    yes_answers = basic + (basic and not hallucinated)
    no_answers = hallucinated + (hallucinated and not basic)
    false_positive = int(basic and not hallucinated)
    return {"bias/yes_difference": (yes_answers - 1) / 2, "bias/no_difference": (no_answers - 1) / 2,
            "bias/false_positive_ratio.num": false_positive,
            "bias/false_positive_ratio.den": (not basic) + (not hallucinated),
            "bias/hallucination_score.num": false_positive, "bias/hallucination_score.den": int(basic)}
