"""GenEval (Ghosh et al., 2023, arXiv:2310.11513): object-focused text-to-image alignment.

The rules are those of djghosh13/geneval ``evaluation/evaluate_images.py`` (unchanged from
commit 16f1681 to af4902f, the newest) and ``evaluation/summary_scores.py``:

* detections of a class are kept when their confidence is **strictly above** 0.3 (0.9 for
  the ``counting`` tag), compared in float32 as mmdet's scores are (a score of float32(0.3) is
  dropped), most confident first, at most 16 per class; overlap suppression
  (``max_overlap``) is off by default (1.0), and when on, drops a box whose IoU with a kept
  box is ≥ ``max_overlap`` (IoU with GenEval's inclusive +1 pixel convention);
* each ``include`` clause takes the ``count`` most confident objects of its class and fails
  when fewer are found; with a ``color``, those objects' colours (CLIP zero-shot over ten
  colour names on the masked, cropped object, background #999) must all be that colour;
  with a ``position`` ``[relation, group]``, every one of those objects must stand in
  ``relation`` to every object that clause ``group`` matched (a failed clause matches None);
* each ``exclude`` clause fails when its class has ``count`` or more kept objects (counting
  prompts for N carry an exclude at N+1: "exactly N");
* relative position of A to B: centre offset, shrunk towards zero by 0.1·(dim_A + dim_B) per
  axis; no relation when both shrunk components are under 1e-3; otherwise the shrunk
  components divided by the *unshrunk* offset's norm, and a relation for each component
  past ±0.5 (left of: dx < −0.5, right of: dx > 0.5, above: dy < −0.5, below: dy > 0.5);
* an image is correct when every clause holds; a task's score is the fraction of correct
  images of its tag; GenEval's overall score is the mean of the task scores (not of images).

Deviations, all deliberate: relations are listed in a fixed order in reasons (GenEval joins a
Python ``set``, whose order changes between runs), and the image folder is read in sorted
order (GenEval uses ``os.listdir``'s order). Results are otherwise record for record what
GenEval writes (``filename, tag, prompt, correct, reason, metadata, details``).

Detection and colour classification are pluggable: a detector maps an RGB PIL image to
`Detection`s; a colour classifier maps (image, objects, class name) to colour names. The
pocket detector (`distillbench.pocket.shapes_detector`) knows each object's colour, so no
classifier is needed. For real images, `Mask2FormerDetector` (transformers) and
`clip_color_classifier` (open_clip, GenEval's CLIP step) load from local paths.

This module registers the ``geneval`` benchmark (`GenEval`), which scores with these rules; its
pocket instance ``pocket-geneval`` is in `distillbench.pocket.benchmarks.pocket_images`. An item is
one image of one prompt (4 per prompt), id ``<prompt index:05>/<sample>`` as in GenEval's folder
layout; its output is the path of the generated image (PNG), so the contract's "one output string
per item" holds. Each item carries ``correct`` and its tag's value; ``overall`` is the macro mean
over the tags (`macro_metrics`), GenEval's overall score. `predict` has the text-to-image kind's
sampler make the images (`distillbench run` of a ``kind: text-to-image`` recipe); images made
elsewhere are graded with `distillbench score`.

Score-only use: ``python -m distillbench.benchmarks.geneval IMAGEDIR`` (``--detector pocket``,
or ``mask2former --model-path DIR --clip-pretrained FILE``) on GenEval's folder layout
(``<NNNNN>/metadata.jsonl``, ``<NNNNN>/samples/<k>.png``).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import re
import sys
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Iterable, Literal, Sequence

import numpy as np
from annotated_types import Ge, Gt

from distillbench.benchmarks.base import Benchmark, ItemScore, register_benchmark
from distillbench.benchmarks.image_metrics import GeneratedImageOutputs
from distillbench.core.errors import UserInputError
from distillbench.core.registry import POCKET_NETWORKS

COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
# GenEval's three colour templates (evaluate_images.py color_classification), {c} the colour.
COLOR_TEMPLATES = ("a photo of a {{c}} {classname}", "a photo of a {{c}}-colored {classname}", "a photo of a {{c}} object")
TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
SCORER_VERSION = "2"  # 2: scores compared with the thresholds in float32, as GenEval does


@dataclass(frozen=True)
class GenEvalRules:
    """GenEval's ``--options`` and their defaults (evaluate_images.py ``__main__``)."""

    threshold: float = 0.3
    counting_threshold: float = 0.9
    max_objects: int = 16
    max_overlap: float = 1.0  # GenEval's NMS_THRESHOLD: 1 keeps overlapping boxes
    position_threshold: float = 0.1

    @classmethod
    def from_options(cls, options: dict[str, str]) -> "GenEvalRules":
        known = {"threshold": float, "counting_threshold": float, "max_objects": int, "max_overlap": float,
                 "position_threshold": float}
        unknown = set(options) - set(known)
        if unknown:
            raise ValueError(f"unknown GenEval option(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{key: known[key](value) for key, value in options.items()})


@dataclass(frozen=True)
class Detection:
    """One detected object: class name, box ``(x0, y0, x1, y1)`` in pixels, confidence, and
    optionally its mask (``(height, width)`` bool) and colour, when the detector knows it."""

    label: str
    box: tuple[float, float, float, float]
    score: float
    mask: Any = None
    color: str | None = None


Detector = Callable[[Any], list[Detection]]
ColorClassifier = Callable[[Any, Sequence[Detection], str], list[str]]


# --- geometry ---------------------------------------------------------------------------
def compute_iou(box_a, box_b) -> float:
    """GenEval's IoU: boxes as inclusive pixel ranges (+1 on each side length)."""
    def area(box):
        return max(box[2] - box[0] + 1, 0) * max(box[3] - box[1] + 1, 0)

    inter = area([max(box_a[0], box_b[0]), max(box_a[1], box_b[1]), min(box_a[2], box_b[2]), min(box_a[3], box_b[3])])
    union = area(box_a) + area(box_b) - inter
    return inter / union if union else 0


def relative_position(box_a, box_b, position_threshold: float = 0.1) -> list[str]:
    """Where A is relative to B ("left of", "right of", "above", "below"; none, one or two)."""
    boxes = np.array([box_a[:4], box_b[:4]], dtype=np.float64).reshape(2, 2, 2)
    center_a, center_b = boxes.mean(axis=-2)
    dim_a, dim_b = np.abs(np.diff(boxes, axis=-2))[..., 0, :]
    offset = center_a - center_b
    revised_offset = np.maximum(np.abs(offset) - position_threshold * (dim_a + dim_b), 0) * np.sign(offset)
    if np.all(np.abs(revised_offset) < 1e-3):
        return []
    dx, dy = revised_offset / np.linalg.norm(offset)
    relations = []
    if dx < -0.5:
        relations.append("left of")
    if dx > 0.5:
        relations.append("right of")
    if dy < -0.5:
        relations.append("above")
    if dy > 0.5:
        relations.append("below")
    return relations


# --- the rules --------------------------------------------------------------------------
def select_objects(detections: Iterable[Detection], tag: str, rules: GenEvalRules = GenEvalRules()) -> dict[str, list[Detection]]:
    """Per class, the detections GenEval keeps: over the tag's threshold, most confident first,
    at most `max_objects`, overlap-suppressed when `max_overlap` < 1. Classes keep the order
    in which the detector first reports them."""
    by_class: dict[str, list[Detection]] = {}
    for detection in detections:
        by_class.setdefault(detection.label, []).append(detection)
    threshold = rules.threshold if tag != "counting" else rules.counting_threshold
    kept: dict[str, list[Detection]] = {}
    for label, candidates in by_class.items():
        # mmdet hands GenEval float32 scores, and NumPy compares them with the Python-float
        # threshold in float32 (evaluate_images.py line 233 at af4902f), so a score that rounds to
        # float32(0.3) is not above 0.3 there. Sorting float32 also ties the scores GenEval ties.
        scores = np.array([d.score for d in candidates], dtype=np.float32)
        ordering = np.argsort(scores)[::-1]  # as GenEval: ties in reverse detector order
        ordering = ordering[scores[ordering] > np.float32(threshold)]
        ordering = ordering[:rules.max_objects].tolist()
        chosen = []
        while ordering:
            best = ordering.pop(0)
            chosen.append(candidates[best])
            ordering = [index for index in ordering if rules.max_overlap == 1
                        or compute_iou(candidates[best].box, candidates[index].box) < rules.max_overlap]
        if chosen:
            kept[label] = chosen
    return kept


def detection_colors(image, objects: Sequence[Detection], classname: str) -> list[str]:
    """The colours the detector itself reported (the pocket detector knows them)."""
    if any(o.color is None for o in objects):
        raise ValueError(f"the detector gave no colour for a {classname}; pass a colour classifier (e.g. CLIP)")
    return [o.color for o in objects]


def evaluate(objects: dict[str, list[Detection]], metadata: dict, image=None,
             classify_colors: ColorClassifier = detection_colors,
             rules: GenEvalRules = GenEvalRules()) -> tuple[bool, str]:
    """GenEval's ``evaluate``: include clauses ANDed, exclude clauses ORed; (correct, reason)."""
    correct = True
    reason = []
    matched_groups: list[list[Detection] | None] = []
    for req in metadata.get("include", []):
        classname = req["class"]
        matched = True
        found_objects = objects.get(classname, [])[:req["count"]]
        if len(found_objects) < req["count"]:
            correct = matched = False
            reason.append(f"expected {classname}>={req['count']}, found {len(found_objects)}")
        else:
            if "color" in req:
                colors = classify_colors(image, found_objects, classname)
                if colors.count(req["color"]) < req["count"]:
                    correct = matched = False
                    reason.append(
                        f"expected {req['color']} {classname}>={req['count']}, found "
                        + f"{colors.count(req['color'])} {req['color']}; and "
                        + ", ".join(f"{colors.count(c)} {c}" for c in COLORS if c in colors))
            if "position" in req and matched:
                expected_rel, target_group = req["position"]
                if matched_groups[target_group] is None:
                    correct = matched = False
                    reason.append(f"no target for {classname} to be {expected_rel}")
                else:
                    for obj in found_objects:
                        for target_obj in matched_groups[target_group]:
                            true_rels = relative_position(obj.box, target_obj.box, rules.position_threshold)
                            if expected_rel not in true_rels:
                                correct = matched = False
                                reason.append(f"expected {classname} {expected_rel} target, found "
                                              + f"{' and '.join(true_rels)} target")
                                break
                        if not matched:
                            break
        matched_groups.append(found_objects if matched else None)
    for req in metadata.get("exclude", []):
        classname = req["class"]
        if len(objects.get(classname, [])) >= req["count"]:
            correct = False
            reason.append(f"expected {classname}<{req['count']}, found {len(objects[classname])}")
    return correct, "\n".join(reason)


def score_detections(detections: Iterable[Detection], metadata: dict, image=None,
                     classify_colors: ColorClassifier = detection_colors,
                     rules: GenEvalRules = GenEvalRules(), filename: str = "") -> dict[str, Any]:
    """One image's GenEval record from its detections (pure, given a pure colour classifier)."""
    objects = select_objects(detections, metadata["tag"], rules)
    correct, reason = evaluate(objects, metadata, image, classify_colors, rules)
    details = {label: [[*map(float, o.box), float(o.score)] for o in found] for label, found in objects.items()}
    return {"filename": filename, "tag": metadata["tag"], "prompt": metadata["prompt"], "correct": bool(correct),
            "reason": reason, "metadata": json.dumps(metadata), "details": json.dumps(details)}


def summary_scores(records: Sequence[dict]) -> dict[str, Any]:
    """summary_scores.py: % correct images and prompts, per-task scores (tags in order of first
    appearance), and the overall score, the mean over tasks."""
    if not records:
        raise ValueError("no GenEval records to summarise")
    by_prompt: dict[str, list[bool]] = {}
    by_tag: dict[str, list[bool]] = {}
    for record in records:
        by_prompt.setdefault(record["metadata"], []).append(bool(record["correct"]))
        by_tag.setdefault(record["tag"], []).append(bool(record["correct"]))
    tasks = {tag: float(np.mean(values)) for tag, values in by_tag.items()}
    return {"images": len(records), "prompts": len(by_prompt),
            "correct_images": float(np.mean([bool(r["correct"]) for r in records])),
            "correct_prompts": float(np.mean([any(values) for values in by_prompt.values()])),
            "tasks": tasks, "task_counts": {tag: [sum(v), len(v)] for tag, v in by_tag.items()},
            "overall": float(np.mean(list(tasks.values())))}


# --- images on disk ---------------------------------------------------------------------
def load_image(path: str | Path):
    """As GenEval opens an image: EXIF orientation applied; converted to RGB for the detector."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        return ImageOps.exif_transpose(image).convert("RGB")


def folder_items(imagedir: str | Path) -> list[tuple[Path, dict]]:
    """(image path, metadata) pairs of GenEval's layout: numeric subfolders, each with
    ``metadata.jsonl`` (one JSON object) and ``samples/<digits>.png``; sorted."""
    imagedir = Path(imagedir)
    if not imagedir.is_dir():
        raise FileNotFoundError(f"{imagedir} is not a folder of GenEval samples")
    items = []
    for folder in sorted(p for p in imagedir.iterdir() if p.is_dir() and p.name.isdigit()):
        metadata = json.loads((folder / "metadata.jsonl").read_text())
        for image in sorted((folder / "samples").iterdir()):
            if image.is_file() and re.match(r"\d+\.png", image.name):
                items.append((image, metadata))
    return items


def predictions_from_folder(imagedir: str | Path) -> list[dict[str, str]]:
    """`distillbench score` predictions for a GenEval folder: id ``<NNNNN>/<k>`` (the prompt's
    folder and the sample's number, as the registered benchmarks number their items), response
    the image path. Folder NNNNN must hold line NNNNN of the metadata file, as GenEval requires."""
    return [{"id": f"{path.parent.parent.name}/{int(path.stem)}", "response": str(path)}
            for path, _ in folder_items(imagedir)]


def score_folder(imagedir: str | Path, detector: Detector, classify_colors: ColorClassifier = detection_colors,
                 rules: GenEvalRules = GenEvalRules()) -> list[dict[str, Any]]:
    """GenEval's per-image records for a folder of samples."""
    records = []
    for path, metadata in folder_items(imagedir):
        image = load_image(path)
        records.append(score_detections(detector(image), metadata, image, classify_colors, rules, str(path)))
    return records


def protocol(detector: str, rules: GenEvalRules = GenEvalRules(), colors: str = "detector",
             **extra: Any) -> dict[str, Any]:
    """What a reader needs to compare this GenEval number with another."""
    return {"scorer": "geneval", "scorer_version": SCORER_VERSION,
            "rules": "djghosh13/geneval evaluate_images.py @af4902f", "detector": detector,
            "color_classifier": colors, **asdict(rules), **extra}


# --- detectors ----------------------------------------------------------------------------
def pocket_detector(**options) -> Detector:
    """The pocket-shapes detector (`POCKET_NETWORKS` ``shapes-detector``) as a GenEval detector (class = shape,
    colour known)."""
    detect = POCKET_NETWORKS.get("shapes-detector")

    def run(image) -> list[Detection]:
        return [Detection(d.shape, d.box, d.confidence, d.mask, d.color) for d in detect(image, **options)]

    return run


def mask2former_input_size(model_path: str | Path) -> Any:
    """The image size the Mask2Former processor resizes to (its preprocessor_config.json ``size``), for the
    protocol: small objects, and so counting, depend on it (mmdet tested GenEval's model at 1333×800)."""
    config = Path(model_path) / "preprocessor_config.json"
    return json.loads(config.read_text()).get("size") if config.is_file() else None


# transformers' COCO label names → GenEval's object_names.txt, where they differ (the same COCO indices)
GENEVAL_NAMES = {"mouse": "computer mouse", "remote": "tv remote", "keyboard": "computer keyboard"}


class Mask2FormerDetector:
    """GenEval's detector through transformers: Mask2Former instance segmentation, loaded from a
    local folder (``from_pretrained``), never downloaded.

    GenEval ran mmdet 2.x's ``mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco`` (Swin-S, COCO
    instances); the transformers model of that architecture is
    ``facebook/mask2former-swin-small-coco-instance``, the original authors' weights rather than
    mmdet's retraining, so its numbers are close to GenEval's, not identical. Post-processing is
    the same algorithm (per query and class: softmax class score × mean mask probability inside
    the binarised mask, top-k over queries × classes), except that transformers binarises the
    masks at 384×384 and resizes them nearest-neighbour, where mmdet resizes the logits first.
    Boxes come from the masks as mmdet's ``mask2bbox`` makes them (x1, y1 exclusive). Every
    segment is returned (threshold 0); GenEval's thresholds apply afterwards. GenEval reads the
    detector's classes by index against its ``object_names.txt``, which names COCO classes 64–66
    "computer mouse", "tv remote" and "computer keyboard"; transformers' COCO label maps say
    "mouse", "remote" and "keyboard", so those three labels are renamed (``GENEVAL_NAMES``).
    """

    def __init__(self, model_path: str | Path, device: str = "cpu"):
        from transformers import AutoImageProcessor, Mask2FormerForUniversalSegmentation

        self.processor = AutoImageProcessor.from_pretrained(model_path)
        self.model = Mask2FormerForUniversalSegmentation.from_pretrained(model_path).to(device).eval()
        self.device = device
        names = {int(index): " ".join(name.lower().replace("_", " ").split())
                 for index, name in self.model.config.id2label.items()}
        self.labels = {index: GENEVAL_NAMES.get(name, name) for index, name in names.items()}

    def missing_classes(self, classnames: Iterable[str]) -> list[str]:
        """GenEval classes (object_names.txt) the model has no label for."""
        return sorted(set(classnames) - set(self.labels.values()))

    def require(self, metadata: Iterable[dict]) -> None:
        """Refuse prompts naming a class the model cannot detect: their images would all fail."""
        missing = self.missing_classes(obj["class"] for record in metadata
                                       for obj in [*record.get("include", []), *record.get("exclude", [])])
        if missing:
            raise ValueError(f"the Mask2Former model has no label for GenEval classes {missing}")

    def __call__(self, image) -> list[Detection]:
        import torch

        inputs = self.processor(images=image, return_tensors="pt").to(self.device)
        with torch.no_grad():
            outputs = self.model(**inputs)
        result = self.processor.post_process_instance_segmentation(
            outputs, threshold=0.0, target_sizes=[image.size[::-1]], return_binary_maps=True)[0]
        if not result["segments_info"]:
            return []
        detections = []
        for mask, info in zip(result["segmentation"].bool().cpu().numpy(), result["segments_info"]):
            rows, columns = np.nonzero(mask)
            box = (float(columns.min()), float(rows.min()), float(columns.max() + 1), float(rows.max() + 1))
            detections.append(Detection(self.labels[info["label_id"]], box, float(info["score"]), mask))
        return detections


def clip_color_classifier(pretrained: str | Path, arch: str = "ViT-L-14", device: str = "cpu",
                          force_quick_gelu: bool = True) -> "ClipColorClassifier":
    """GenEval's colour classifier from a local open_clip checkpoint (GenEval: ``ViT-L-14`` with
    OpenAI's weights, which need QuickGELU: open_clip #771)."""
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=str(pretrained), device=device,
                                                                 force_quick_gelu=force_quick_gelu)
    return ClipColorClassifier(model, preprocess, open_clip.get_tokenizer(arch), device=device)


class ClipColorClassifier:
    """GenEval's colour step: zero-shot CLIP over `COLORS` with GenEval's three templates per
    class (text embeddings normalised, averaged, renormalised, as clip_benchmark's
    ``zero_shot_classifier``), on each object composited over a #999 background through its
    mask and cropped to its box; argmax of the cosine logits.

    `model` is an open_clip CLIP (GenEval: ``ViT-L-14``, ``pretrained="openai"``), `preprocess`
    its eval transform, `tokenizer` its tokenizer; load them from a local path.
    """

    def __init__(self, model, preprocess, tokenizer, *, bgcolor: str = "#999", crop: bool = True,
                 device: str = "cpu", batch_size: int = 16):
        self.model, self.preprocess, self.tokenizer = model.eval(), preprocess, tokenizer
        self.bgcolor, self.crop, self.device, self.batch_size = bgcolor, crop, device, batch_size
        self._classifiers: dict[str, Any] = {}

    def _classifier(self, classname: str):
        import torch
        import torch.nn.functional as F

        if classname not in self._classifiers:
            weights = []
            with torch.no_grad():
                for color in COLORS:
                    texts = [t.format(classname=classname).format(c=color) for t in COLOR_TEMPLATES]
                    embeddings = self.model.encode_text(self.tokenizer(texts).to(self.device))
                    embedding = F.normalize(embeddings, dim=-1).mean(dim=0)
                    weights.append(embedding / embedding.norm())
            self._classifiers[classname] = torch.stack(weights, dim=1)
        return self._classifiers[classname]

    def crops(self, image, objects: Sequence[Detection]) -> list:
        from PIL import Image

        image = image.convert("RGB")
        blank = image.copy() if self.bgcolor == "original" else Image.new("RGB", image.size, color=self.bgcolor)
        crops = []
        for obj in objects:
            crop = image
            if obj.mask is not None:
                mask = np.asarray(obj.mask)
                if tuple(image.size[::-1]) != tuple(mask.shape):
                    raise ValueError(f"mask shape {mask.shape} does not match the image {image.size[::-1]}")
                crop = Image.composite(image, blank, Image.fromarray(mask))
            if self.crop:
                crop = crop.crop(tuple(obj.box[:4]))
            crops.append(crop)
        return crops

    def __call__(self, image, objects: Sequence[Detection], classname: str) -> list[str]:
        import torch
        import torch.nn.functional as F

        classifier = self._classifier(classname)
        crops = self.crops(image, objects)
        predictions = []
        with torch.no_grad():
            for first in range(0, len(crops), self.batch_size):
                batch = torch.stack([self.preprocess(c) for c in crops[first:first + self.batch_size]]).to(self.device)
                features = F.normalize(self.model.encode_image(batch), dim=-1)
                predictions.extend((100.0 * features @ classifier).argmax(1).tolist())
        return [COLORS[index] for index in predictions]


# --- the registered benchmark ------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _detector(kind: str, model_path: str | None, clip_model: str, clip_pretrained: str | None, device: str,
              metadata: str | None = None):
    if kind == "pocket":
        return pocket_detector(), detection_colors
    detector = Mask2FormerDetector(model_path, device)
    try:
        detector.require(json.loads(line) for line in Path(metadata).read_text().splitlines() if line.strip())
    except ValueError as error:
        raise UserInputError(f"geneval: {error}") from None
    return detector, clip_color_classifier(clip_pretrained, clip_model, device)


@dataclass(frozen=True, kw_only=True)
class _ScoredByGenEval(GeneratedImageOutputs, ABC):
    """Items, scoring and the rule options shared by the GenEval benchmarks, at GenEval's defaults
    (keyword-only, so a benchmark's own required fields may come first)."""

    samples_per_prompt: Annotated[int, Gt(0)] = 4
    threshold: Annotated[float, Ge(0)] = 0.3
    counting_threshold: Annotated[float, Ge(0)] = 0.9
    max_objects: Annotated[int, Gt(0)] = 16
    max_overlap: Annotated[float, Ge(0)] = 1.0
    position_threshold: Annotated[float, Ge(0)] = 0.1

    scorer_version = SCORER_VERSION
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
        image = load_image(output)
        record = score_detections(detector(image), item["metadata"], image, classify_colors, self.rules, output)
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
    detector: Literal["mask2former", "pocket"] = "mask2former"
    model_path: str | None = None  # transformers Mask2Former folder
    clip_model: str = "ViT-L-14"
    clip_pretrained: str | None = None  # open_clip checkpoint file
    device: str = "cpu"

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
                                                      "detector_input_size": mask2former_input_size(
                                                          self.model_path)}
        colors = "detector" if self.detector == "pocket" else "open_clip zero-shot"
        return {**protocol(self.detector, self.rules, colors, **extra), "scorer_version": self.scorer_version,
                "samples_per_prompt": self.samples_per_prompt,
                "metadata_hash": hashlib.sha256(Path(self.metadata).read_bytes()).hexdigest()[:16]}


# --- command line -------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distillbench.benchmarks.geneval",
                                     description="Score a GenEval image folder (GenEval's rules; pluggable detector).")
    parser.add_argument("imagedir", help="GenEval layout: <NNNNN>/metadata.jsonl and <NNNNN>/samples/<k>.png")
    parser.add_argument("--outfile", default="results.jsonl", help="per-image records (GenEval's results.jsonl)")
    parser.add_argument("--detector", choices=["pocket", "mask2former"], default="pocket",
                        help="pocket: the pocket-shapes detector (colours known); mask2former: a transformers "
                             "Mask2Former folder (--model-path) with CLIP colours (--clip-pretrained)")
    parser.add_argument("--model-path", help="mask2former: local folder of the transformers model and processor")
    parser.add_argument("--clip-model", default="ViT-L-14", help="open_clip architecture of the colour classifier")
    parser.add_argument("--clip-pretrained", help="mask2former: local open_clip checkpoint file")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--write-predictions", metavar="FILE.jsonl",
                        help="only write `distillbench score` predictions (id, image path) for the folder, and stop")
    parser.add_argument("--options", nargs="*", default=[], metavar="KEY=VALUE",
                        help="GenEval's options: threshold, counting_threshold, max_objects, max_overlap, "
                             "position_threshold")
    args = parser.parse_args(argv)
    if args.write_predictions:
        rows = predictions_from_folder(args.imagedir)
        Path(args.write_predictions).write_text("".join(json.dumps(row) + "\n" for row in rows))
        print(f"{len(rows)} predictions written to {args.write_predictions}")
        return 0
    try:
        rules = GenEvalRules.from_options(dict(option.split("=", 1) for option in args.options))
        if args.detector == "pocket":
            detector, classify_colors, extra = pocket_detector(), detection_colors, {}
        else:
            if not args.model_path or not args.clip_pretrained:
                raise ValueError("--detector mask2former needs --model-path and --clip-pretrained (local paths)")
            detector = Mask2FormerDetector(args.model_path, args.device)
            detector.require(metadata for _, metadata in folder_items(args.imagedir))
            classify_colors = clip_color_classifier(args.clip_pretrained, args.clip_model, args.device)
            extra = {"model_path": str(args.model_path), "clip_model": args.clip_model,
                     "clip_pretrained": str(args.clip_pretrained),
                     "detector_input_size": mask2former_input_size(args.model_path)}
        records = score_folder(args.imagedir, detector, classify_colors, rules)
        summary = summary_scores(records)
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    outfile = Path(args.outfile)
    outfile.parent.mkdir(parents=True, exist_ok=True)
    outfile.write_text("".join(json.dumps(r) + "\n" for r in records))
    summary_path = outfile.with_suffix(".summary.json")
    colors = "detector" if args.detector == "pocket" else "open_clip zero-shot"
    summary_path.write_text(json.dumps({"protocol": protocol(args.detector, rules, colors, **extra), **summary},
                                       indent=1) + "\n")
    for tag, score in summary["tasks"].items():
        correct, total = summary["task_counts"][tag]
        print(f"{tag:<16} = {score:.2%} ({correct} / {total})")
    print(f"Overall score (avg. over tasks): {summary['overall']:.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
