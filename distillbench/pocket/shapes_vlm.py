"""pocket-vlm: pocket-shapes scenes for vision-language models, and the items of four VLM benchmarks.

Scenes are drawn with pocket-shapes' rules (`shapes.Shape`, `shapes.render`, boxes at least a pixel
apart, 32×32 by default, the train/test split a function of a hash of what is drawn), but the
objects follow skewed statistics, as COCO's do: an object is a (colour, shape) pair, 30 in all,
and every scene has a *theme* (`THEMES`) that draws most of its 1–4 objects from six favourites.
So objects have frequencies and co-occurrences, which is what POPE's popular and adversarial
negatives are built from and what a model that leans on priors hallucinates.

On the test split it builds, deterministically from (n, seed):

* `vqa_items`: VQAv2-style questions (shape, colour, count, left/right position, a yes/no
  relation), each with ten "annotator" answers produced by rule with realistic disagreement:
  number words for digits, colour and shape synonyms, articles, "light"/"dark" colours, the odd
  miscount, and a split vote where a position is ambiguous (`annotator_answers`);
* `pope_items`: POPE's "Is there a <colour> <shape> in the image?" for up to three objects of
  each image (label yes) and as many absent ones (label no), sampled per split as POPE does:
  random, popular (most frequent absent objects) or adversarial (absent objects that co-occur
  most with the image's), with frequencies and co-occurrences counted over `STATISTICS_POOL`
  train scenes (`object_statistics`);
* `chair_items`: each image's true objects, for CHAIR with the pocket synonym table
  (`chair_vocabulary`: "crimson disc" is a red circle, "two blue boxes" two blue squares);
* `videohallucer_items`: short clips (`FRAMES` frames, 1–3 shapes each moving 2–4 px a frame in
  one direction) with VideoHallucer pairs (a basic question whose answer is yes, a hallucinated
  one whose answer is no) in three categories: ``obj_rel`` (which of two shapes is left of /
  above the other), ``temporal`` (the direction a shape moves) and ``semantic`` (the colour of a
  shape, the hallucinated colour the one that co-occurs most with that shape). VideoHallucer's
  external-knowledge categories (fact, nonfact) have no pocket counterpart.

Items carry their scene as plain data (`payload`) and images are rendered in memory from it
(`render_payload`), so nothing is written to disk. `training_conversations` gives the train-split
conversations the pocket VLM zoo learns from (captions, VQA, existence and video questions).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from distillbench.benchmarks.vlm.chair import ObjectVocabulary, caption_objects
from distillbench.benchmarks.vlm.vqa import normalize_answer
from distillbench.pocket.shapes import COLORS, NUMBERS, SHAPES, WORLD_VERSION, Scene, Shape, _apart, render, side_range, split_of

IMAGE_SIZE = 32
OBJECTS = tuple((color, kind) for kind in SHAPES for color in COLORS)  # 30 (colour, shape) objects
# A theme's favourite objects, most likely first; `OFF_THEME` of objects are drawn from all 30 instead.
THEMES: dict[str, tuple[tuple[str, str], ...]] = {
    "harbour": (("blue", "square"), ("white", "triangle"), ("red", "circle"), ("yellow", "circle"),
                ("black", "square"), ("orange", "triangle")),
    "orchard": (("green", "triangle"), ("red", "circle"), ("yellow", "circle"), ("brown", "square"),
                ("orange", "circle"), ("pink", "circle")),
    "city": (("black", "square"), ("white", "square"), ("red", "circle"), ("yellow", "triangle"),
             ("blue", "circle"), ("purple", "square")),
    "garden": (("pink", "circle"), ("purple", "triangle"), ("green", "triangle"), ("yellow", "circle"),
               ("brown", "square"), ("white", "circle")),
}
THEME_WEIGHTS = (6, 5, 4, 3, 2, 1)
OFF_THEME = 0.15
OBJECT_COUNT_WEIGHTS = {1: 2, 2: 3, 3: 3, 4: 2}
STATISTICS_POOL = 2000  # train scenes whose object counts give POPE's popular and adversarial negatives
FRAMES = 4
SPEEDS = (2, 3, 4)  # pixels per frame
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}

# Prompts. The pocket models read characters, so every character of a prompt is a token a step pays
# for: the pocket VQA and POPE prompt is the bare question (a real VLM gets LLaVA-1.5's
# "\nAnswer the question using a single word or phrase." through the benchmarks' `prompt` option);
# captions use CHAIR's usual prompt and clips VideoHallucer's instruction, which its scorer expects.
QUESTION_PROMPT = "{question}"
DESCRIBE = "Please describe this image in detail."
VIDEO_INSTRUCTION = "\nAnswer the question using 'yes' or 'no'."  # VideoHallucer's

# Words people use for the pocket colours and shapes: CHAIR's synonym table and the annotators' variants.
COLOR_SYNONYMS = {"red": ("crimson", "scarlet"), "orange": ("amber",), "yellow": ("golden", "gold"),
                  "green": ("emerald",), "blue": ("navy", "azure"), "purple": ("violet",), "pink": ("magenta",),
                  "brown": ("tan",), "black": ("ebony",), "white": ("ivory",)}
SHAPE_SYNONYMS = {"circle": ("disc", "disk", "dot", "ball"), "square": ("box", "block", "cube"),
                  "triangle": ("pyramid", "wedge")}
# What annotators answer instead of the shape's name, and the colour's shade words.
SHAPE_ANSWER_VARIANTS = {"circle": ("round", "oval"), "square": ("rectangle", "box"), "triangle": ("pyramid",)}
SHADE = {"red": "dark", "orange": "light", "yellow": "light", "green": "dark", "blue": "dark", "purple": "dark",
         "pink": "light", "brown": "dark", "black": "dark", "white": "light"}


def object_name(obj: tuple[str, str]) -> str:
    return f"{obj[0]} {obj[1]}"


def with_article(text: str) -> str:
    return f"an {text}" if text[0] in "aeiou" else f"a {text}"


# --- CHAIR's synonym table for the pocket world ----------------------------------------------------
def chair_synonym_lines() -> tuple[str, ...]:
    """One line per object, as ``data/synonyms.txt``: the category ("red circle") first, then every
    colour word × shape word that names it ("crimson disc", ...)."""
    lines = []
    for color, kind in OBJECTS:
        names = [f"{c} {k}" for c in (color, *COLOR_SYNONYMS[color]) for k in (kind, *SHAPE_SYNONYMS[kind])]
        lines.append(", ".join(names))
    return tuple(lines)


@lru_cache(maxsize=1)
def chair_vocabulary():
    """CHAIR's tables for the pocket world (`chair.ObjectVocabulary`), built from `chair_synonym_lines`."""
    lines = chair_synonym_lines()
    # Every name is two words, read as one after singularizing, as CHAIR merges "traffic light".
    double_words = {name: name for line in lines for name in line.split(", ")}
    return ObjectVocabulary.from_synonym_lines("pocket-shapes", lines, double_words)


# --- scenes -----------------------------------------------------------------------------------------
def _layout(objects: list[tuple[str, str]], rng: random.Random, image_size: int) -> list[Shape] | None:
    low, high = side_range(image_size)
    high = max(low, high - max(0, len(objects) - 2))  # room for three or four shapes
    shapes: list[Shape] = []
    for color, kind in objects:
        side = rng.randint(low, high)
        for _ in range(50):
            candidate = Shape(kind, color, rng.randint(0, image_size - side), rng.randint(0, image_size - side), side)
            if all(_apart(candidate, other) for other in shapes):
                shapes.append(candidate)
                break
        else:
            return None
    return shapes


def _draw_objects(rng: random.Random, count: int) -> tuple[str, list[tuple[str, str]]]:
    theme = rng.choice(sorted(THEMES))
    objects = [rng.choice(OBJECTS) if rng.random() < OFF_THEME else rng.choices(THEMES[theme], THEME_WEIGHTS)[0]
               for _ in range(count)]
    return theme, objects


def sample_scene(rng: random.Random, image_size: int = IMAGE_SIZE) -> Scene:
    """One scene: a theme, 1–4 objects mostly from it, laid out at random with boxes apart."""
    while True:
        count = rng.choices(list(OBJECT_COUNT_WEIGHTS), list(OBJECT_COUNT_WEIGHTS.values()))[0]
        theme, objects = _draw_objects(rng, count)
        shapes = _layout(objects, rng, image_size)
        if shapes is not None:
            return Scene(tuple(shapes), {"tag": "scene", "theme": theme}, image_size)


@lru_cache(maxsize=16)
def scenes(split: str, size: int, seed: int = 0, image_size: int = IMAGE_SIZE) -> tuple[Scene, ...]:
    """`size` distinct scenes of `split` (train and test disjoint by the shapes' split hash)."""
    rng = random.Random(f"pocket-vlm/{split}/{seed}/{image_size}")
    found: dict[str, Scene] = {}
    while len(found) < size:
        scene = sample_scene(rng, image_size)
        if split_of(scene) == split:
            found.setdefault(scene.digest, scene)
    return tuple(found.values())


def scene_id(scene: Scene) -> str:
    return f"pocket-vlm/{scene.digest[:12]}"


def objects_of(scene: Scene) -> list[tuple[str, str]]:
    return [(s.color, s.kind) for s in scene.shapes]


def payload(shapes) -> list[list]:
    """Shapes as plain data (kind, colour, x, y, side), for items that must render their image."""
    return [[s.kind, s.color, s.x, s.y, s.side] for s in shapes]


def render_payload(shapes: list[list], image_size: int = IMAGE_SIZE):
    """The PIL image of a `payload`."""
    from PIL import Image

    return Image.fromarray(render([Shape(*shape) for shape in shapes], image_size), mode="RGB")


def plural(kind: str) -> str:
    return f"{kind}es" if kind.endswith(("s", "x")) else f"{kind}s"


def caption(shapes, rng: random.Random | None = None) -> str:
    """Every object, left to right, identical ones counted ("two red circles"); with `rng`, a caption
    as a varied annotator writes it (now and then a synonym for a colour or a shape)."""
    counts = Counter((s.color, s.kind) for s in shapes)
    order: list[tuple[str, str]] = []
    for shape in sorted(shapes, key=lambda s: (s.centre[0], s.centre[1])):
        if (shape.color, shape.kind) not in order:
            order.append((shape.color, shape.kind))
    phrases = []
    for color, kind in order:
        number = counts[(color, kind)]
        if rng is not None and rng.random() < 0.1:
            color = rng.choice(COLOR_SYNONYMS[color])
        if rng is not None and rng.random() < 0.1:
            kind = rng.choice(SHAPE_SYNONYMS[kind])
        phrases.append(with_article(f"{color} {kind}") if number == 1 else f"{NUMBERS[number]} {color} {plural(kind)}")
    listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + f" and {phrases[-1]}"
    return f"a photo of {listed}"


# --- object statistics (POPE's popular and adversarial negatives) ---------------------------------
@lru_cache(maxsize=4)
def object_statistics(pool: int = STATISTICS_POOL, seed: int = 0) -> tuple[dict, dict]:
    """(frequency, co-occurrence) over `pool` train scenes: the number of scenes with each object, and
    with each ordered pair of distinct objects."""
    frequency: Counter = Counter()
    together: Counter = Counter()
    for scene in scenes("train", pool, seed):
        present = sorted(set(objects_of(scene)))
        frequency.update(present)
        together.update((a, b) for a in present for b in present if a != b)
    return dict(frequency), dict(together)


def popular_order(frequency: dict) -> list[tuple[str, str]]:
    return sorted(OBJECTS, key=lambda obj: (-frequency.get(obj, 0), OBJECTS.index(obj)))


def negatives(present: list[tuple[str, str]], count: int, strategy: str, rng: random.Random,
              statistics: tuple[dict, dict]) -> list[tuple[str, str]]:
    """`count` absent objects by POPE's strategies: random (uniform), popular (most frequent overall)
    or adversarial (most co-occurring with the present objects), ties broken by frequency."""
    frequency, together = statistics
    absent = [obj for obj in OBJECTS if obj not in present]
    if strategy == "random":
        return rng.sample(absent, count)
    if strategy == "popular":
        order = popular_order(frequency)
        return [obj for obj in order if obj in absent][:count]
    if strategy == "adversarial":
        score = {obj: sum(together.get((p, obj), 0) for p in set(present)) for obj in absent}
        return sorted(absent, key=lambda obj: (-score[obj], -frequency.get(obj, 0), OBJECTS.index(obj)))[:count]
    raise ValueError(f"unknown negative sampling {strategy!r}; expected random, popular or adversarial")


# --- annotators ---------------------------------------------------------------------------------
def _number_answer(truth: int, rng: random.Random) -> str:
    if truth >= 2 and rng.random() < 0.05:  # a miscount
        truth += rng.choice((-1, 1))
    draw = rng.random()
    if draw < 0.8:
        return str(truth)
    if truth == 0 and draw < 0.9:
        return "none"
    return NUMBERS[truth] if truth < len(NUMBERS) else str(truth)


def _color_answer(color: str, rng: random.Random) -> str:
    draw = rng.random()
    if draw < 0.1:
        return rng.choice(COLOR_SYNONYMS[color])
    if draw < 0.18:
        return f"{SHADE[color]} {color}"
    return color


def _shape_answer(kind: str, rng: random.Random) -> str:
    draw = rng.random()
    if draw < 0.12:
        return rng.choice(SHAPE_ANSWER_VARIANTS[kind])
    if draw < 0.2:
        return with_article(kind)
    return kind


def _side_answer(offset: float, rng: random.Random) -> str:
    """Left or right for a centre `offset` from the middle (−1..1); near the middle, some say middle
    and the others split, each annotator judging the offset with a little noise."""
    if abs(offset) < 0.12 and rng.random() < 0.4:
        return rng.choice(("middle", "center"))
    side = "left" if offset + rng.gauss(0, 0.08) < 0 else "right"
    draw = rng.random()
    return f"on {side}" if draw < 0.06 else f"{side} side" if draw < 0.12 else side


def _relation_answer(gap: float, rng: random.Random) -> str:
    """Yes when the first shape's centre is left of the second's by `gap` pixels, as judged by eye."""
    return "yes" if gap + rng.gauss(0, 1.5) > 0 else "no"


def annotator_answers(kind: str, truth: Any, rng: random.Random, annotators: int = 10) -> list[str]:
    """Ten answers to one question by rule: `kind` is number, color, shape, side or relation."""
    answer = {"number": _number_answer, "color": _color_answer, "shape": _shape_answer, "side": _side_answer,
              "relation": _relation_answer}[kind]
    return [answer(truth, rng) for _ in range(annotators)]


# --- VQA ----------------------------------------------------------------------------------------
def _unique(scene: Scene, key) -> dict:
    groups: dict = {}
    for shape in scene.shapes:
        groups.setdefault(key(shape), []).append(shape)
    return {name: members[0] for name, members in groups.items() if len(members) == 1}


def vqa_questions(scene: Scene, rng: random.Random) -> list[dict]:
    """Every question type the scene allows, once: (question, question_type, answer_type, kind, truth)."""
    image_size = scene.image_size
    questions = [("How many shapes are there?", "how many", "number", "number", len(scene.shapes))]
    kind = rng.choice(SHAPES)
    count = sum(s.kind == kind for s in scene.shapes)
    questions.append((f"How many {plural(kind)} are there?", "how many", "number", "number", count))
    by_kind = _unique(scene, lambda s: s.kind)
    if by_kind:
        kind = rng.choice(sorted(by_kind))
        questions.append((f"What color is the {kind}?", "what color is the", "other", "color", by_kind[kind].color))
    by_color = _unique(scene, lambda s: s.color)
    if by_color:
        color = rng.choice(sorted(by_color))
        questions.append((f"What shape is the {color} object?", "what shape is the", "other", "shape",
                          by_color[color].kind))
    by_object = _unique(scene, lambda s: (s.color, s.kind))
    if by_object:
        obj = rng.choice(sorted(by_object))
        offset = (by_object[obj].centre[0] - image_size / 2) / (image_size / 2)
        questions.append((f"Is the {object_name(obj)} on the left or on the right?", "is the", "other", "side", offset))
    if len(by_object) >= 2:
        first, second = rng.sample(sorted(by_object), 2)
        gap = by_object[second].centre[0] - by_object[first].centre[0]
        questions.append((f"Is the {object_name(first)} to the left of the {object_name(second)}?", "is the",
                          "yes/no", "relation", gap))
    return [dict(zip(("question", "question_type", "answer_type", "kind", "truth"), q)) for q in questions]


def most_common(answers: list[str]) -> str:
    counts = Counter(normalize_answer(a) for a in answers)
    return max(counts, key=lambda a: (counts[a], -min(i for i, b in enumerate(answers) if normalize_answer(b) == a)))


def vqa_items(n: int, seed: int = 0, per_image: int = 3, split: str = "test") -> list[dict]:
    """VQAv2-style items over `n` scenes of `split`, up to `per_image` questions each (question types
    drawn at random among those the scene allows), each with ten annotator answers."""
    items = []
    for index, scene in enumerate(scenes(split, n, seed)):
        rng = random.Random(f"pocket-vqa/{seed}/{scene.digest}")
        questions = vqa_questions(scene, rng)
        chosen = sorted(rng.sample(range(len(questions)), min(per_image, len(questions))))
        for number, q in enumerate(questions[i] for i in chosen):
            answers = annotator_answers(q["kind"], q["truth"], rng)
            items.append({"id": f"{index * 10 + number}", "question_id": index * 10 + number,
                          "image_id": scene_id(scene), "question": q["question"],
                          "question_type": q["question_type"], "answer_type": q["answer_type"], "answers": answers,
                          "multiple_choice_answer": most_common(answers), "scene": payload(scene.shapes)})
    return items


# --- POPE ---------------------------------------------------------------------------------------
POPE_SPLITS = ("random", "popular", "adversarial")
POPE_QUESTION = "Is there {object} in the image?"


def pope_question(obj: tuple[str, str]) -> str:
    return POPE_QUESTION.format(object=with_article(object_name(obj)))


def pope_items(n: int, seed: int = 0, splits: tuple[str, ...] = POPE_SPLITS, per_image: int = 3) -> list[dict]:
    """POPE's questions for `n` test images per split (the same images in every split): up to
    `per_image` present objects (label yes) and as many absent ones (label no), in POPE's file
    format (question_id, image, text, label) plus the scene to render."""
    statistics = object_statistics(STATISTICS_POOL, seed)
    test = scenes("test", n, seed)
    items = []
    for split in splits:
        question_id = 0
        for scene in test:
            rng = random.Random(f"pocket-pope/{split}/{seed}/{scene.digest}")
            present = sorted(set(objects_of(scene)))
            positives = rng.sample(present, min(per_image, len(present)))
            for obj, label in ([(p, "yes") for p in positives]
                               + [(q, "no") for q in negatives(present, len(positives), split, rng, statistics)]):
                question_id += 1
                items.append({"id": f"{split}/{question_id}", "split": split, "question_id": question_id,
                              "image": scene_id(scene), "text": pope_question(obj), "label": label,
                              "object": object_name(obj), "scene": payload(scene.shapes)})
    return items


# --- CHAIR --------------------------------------------------------------------------------------
def chair_items(n: int, seed: int = 0) -> list[dict]:
    """`n` test images with their ground-truth objects: the drawn objects, plus those its reference
    caption names (the same ones: pocket captions are exact), as CHAIR joins instances and captions."""
    items = []
    for scene in scenes("test", n, seed):
        reference = caption(scene.shapes)
        truth = {object_name(o) for o in objects_of(scene)} | set(caption_objects(reference, chair_vocabulary()).categories)
        items.append({"id": scene_id(scene), "image_id": scene_id(scene), "ground_truth": sorted(truth),
                      "reference_caption": reference, "scene": payload(scene.shapes)})
    return items


# --- videos -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Clip:
    """Shapes at their first-frame positions, each moving `speed` pixels a frame in `direction`."""

    shapes: tuple[Shape, ...]
    directions: tuple[str, ...]
    speeds: tuple[int, ...]
    frames: int = FRAMES
    image_size: int = IMAGE_SIZE

    def frame(self, t: int) -> tuple[Shape, ...]:
        return tuple(Shape(s.kind, s.color, s.x + DIRECTIONS[d][0] * v * t, s.y + DIRECTIONS[d][1] * v * t, s.side)
                     for s, d, v in zip(self.shapes, self.directions, self.speeds))

    def payload(self) -> list[list[list]]:
        return [payload(self.frame(t)) for t in range(self.frames)]

    @property
    def digest(self) -> str:
        drawn = sorted((s.kind, s.color, s.x, s.y, s.side, d, v)
                       for s, d, v in zip(self.shapes, self.directions, self.speeds))
        text = json.dumps({"world": WORLD_VERSION, "size": self.image_size, "frames": self.frames, "clip": drawn})
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def split(self) -> str:
        return "test" if int(self.digest[:8], 16) % 100 >= 90 else "train"


def _fits(clip: Clip) -> bool:
    size = clip.image_size
    for t in range(clip.frames):
        shapes = clip.frame(t)
        if any(s.x < 0 or s.y < 0 or s.x + s.side > size or s.y + s.side > size for s in shapes):
            return False
        if any(not _apart(a, b) for i, a in enumerate(shapes) for b in shapes[i + 1:]):
            return False
    return True


def sample_clip(rng: random.Random, image_size: int = IMAGE_SIZE) -> Clip:
    """1–3 objects (themed, as scenes), each moving in a straight line, apart and inside in every frame."""
    while True:
        count = rng.choice((1, 2, 2, 3))
        _, objects = _draw_objects(rng, count)
        low, high = side_range(image_size)
        for _ in range(100):
            shapes = [Shape(kind, color, rng.randint(0, image_size - side), rng.randint(0, image_size - side), side)
                      for (color, kind), side in ((obj, rng.randint(low, high - 2)) for obj in objects)]
            clip = Clip(tuple(shapes), tuple(rng.choice(sorted(DIRECTIONS)) for _ in shapes),
                        tuple(rng.choice(SPEEDS) for _ in shapes), FRAMES, image_size)
            if _fits(clip):
                return clip


@lru_cache(maxsize=8)
def clips(split: str, size: int, seed: int = 0) -> tuple[Clip, ...]:
    rng = random.Random(f"pocket-vlm/clips/{split}/{seed}")
    found: dict[str, Clip] = {}
    while len(found) < size:
        clip = sample_clip(rng)
        if clip.split == split:
            found.setdefault(clip.digest, clip)
    return tuple(found.values())


VIDEO_CATEGORIES = ("obj_rel", "temporal", "semantic")


def _constant_relation(clip: Clip, a: int, b: int) -> str | None:
    """"left of" or "above" when shape a is so relative to shape b in every frame (centres, 2 px apart)."""
    frames = [clip.frame(t) for t in range(clip.frames)]
    if all(f[b].centre[0] - f[a].centre[0] >= 2 for f in frames):
        return "to the left of"
    if all(f[b].centre[1] - f[a].centre[1] >= 2 for f in frames):
        return "above"
    return None


def video_pair(clip: Clip, category: str, rng: random.Random, statistics: tuple[dict, dict]) -> tuple[str, str] | None:
    """(basic question, hallucinated question) of `category` for a clip, or None when it allows none.

    obj_rel: "Is the A to the left of / above the B?" true in every frame; the hallucinated one swaps A and B.
    temporal: "Does the A move to the <direction>?"; the hallucinated one asks the opposite direction.
    semantic: "Is there a <colour> <shape> in the video?"; the hallucinated one names the absent colour
    seen most often with that shape (the train statistics), as POPE's adversarial negatives.
    """
    objects = [(s.color, s.kind) for s in clip.shapes]
    unique = [i for i, obj in enumerate(objects) if objects.count(obj) == 1]
    if category == "obj_rel":
        pairs = [(a, b, rel) for a in unique for b in unique if a != b
                 for rel in [_constant_relation(clip, a, b)] if rel]
        if not pairs:
            return None
        a, b, relation = rng.choice(pairs)
        name_a, name_b = object_name(objects[a]), object_name(objects[b])
        return f"Is the {name_a} {relation} the {name_b}?", f"Is the {name_b} {relation} the {name_a}?"
    if category == "temporal":
        if not unique:
            return None
        i = rng.choice(unique)
        direction = clip.directions[i]
        name = object_name(objects[i])
        word = {"left": "to the left", "right": "to the right", "up": "up", "down": "down"}
        return f"Does the {name} move {word[direction]}?", f"Does the {name} move {word[OPPOSITE[direction]]}?"
    if category == "semantic":
        color, kind = rng.choice(objects)
        frequency, together = statistics
        absent = [(c, kind) for c in COLORS if (c, kind) not in objects]
        score = {obj: sum(together.get((p, obj), 0) for p in set(objects)) for obj in absent}
        wrong = min(absent, key=lambda obj: (-score[obj], -frequency.get(obj, 0), COLORS.index(obj[0])))
        return (f"Is there {with_article(object_name((color, kind)))} in the video?",
                f"Is there {with_article(object_name(wrong))} in the video?")
    raise ValueError(f"unknown category {category!r}; expected one of {VIDEO_CATEGORIES}")


def videohallucer_items(n: int, seed: int = 0, categories: tuple[str, ...] = VIDEO_CATEGORIES) -> list[dict]:
    """`n` pairs per category on test clips, in VideoHallucer's record format (basic/hallucination,
    each with question, answer and video) plus the clip's frames to render."""
    statistics = object_statistics(STATISTICS_POOL, seed)
    items = []
    for category in categories:
        pool = clips("test", 4 * n, seed)
        index = 0
        for clip in pool:
            if index == n:
                break
            rng = random.Random(f"pocket-videohallucer/{category}/{seed}/{clip.digest}")
            pair = video_pair(clip, category, rng, statistics)
            if pair is None:
                continue
            video = f"pocket-vlm-clip/{clip.digest[:12]}"
            items.append({"id": f"{category}/{index}", "category": category,
                          "basic": {"question": pair[0], "answer": "yes", "video": video},
                          "hallucination": {"question": pair[1], "answer": "no", "video": video},
                          "frames": clip.payload()})
            index += 1
        if index < n:
            raise ValueError(f"pocket-videohallucer: only {index} {category} pairs in {len(pool)} clips")
    return items


# --- training conversations (the pocket VLM zoo's data) -------------------------------------------
@dataclass(frozen=True)
class Conversation:
    """Frames (payloads; one for an image) and (user text, assistant reply) turns; the first user turn
    gets the image placeholders."""

    frames: tuple
    turns: tuple[tuple[str, str], ...]


def _image_turns(scene: Scene, rng: random.Random, statistics: tuple[dict, dict]) -> list[tuple[str, str]]:
    turns = [(DESCRIBE, caption(scene.shapes, rng) if rng.random() < 0.5 else caption(scene.shapes))]
    for q in vqa_questions(scene, rng):
        turns.append((QUESTION_PROMPT.format(question=q["question"]),
                      most_common(annotator_answers(q["kind"], q["truth"], rng))))
    present = sorted(set(objects_of(scene)))
    for obj in rng.sample(present, min(2, len(present))):
        turns.append((QUESTION_PROMPT.format(question=pope_question(obj)), "Yes"))
    # Absent objects half drawn uniformly, half frequent or co-occurring ones (measured: with uniform
    # ones only, the teacher learned the prior and said yes to 82% of POPE's adversarial questions).
    strategy = rng.choice(("random", "random", "popular", "adversarial"))
    for obj in negatives(present, min(2, len(present)), strategy, rng, statistics):
        turns.append((QUESTION_PROMPT.format(question=pope_question(obj)), "No"))
    return turns


def _video_turns(clip: Clip, rng: random.Random, statistics: tuple[dict, dict]) -> list[tuple[str, str]]:
    turns = []
    for category in VIDEO_CATEGORIES:
        pair = video_pair(clip, category, rng, statistics)
        if pair is not None:
            turns += [(pair[0] + VIDEO_INSTRUCTION, "yes"), (pair[1] + VIDEO_INSTRUCTION, "no")]
    return turns


def training_conversations(images: int, videos: int, seed: int = 0, turns_per_image: int = 2,
                           turns_per_video: int = 2) -> list[Conversation]:
    """Train-split conversations: per image, `turns_per_image` turns drawn from its caption, its
    VQA questions (the annotators' most common answer) and its existence questions (half present,
    half absent: random, popular or adversarial, 2:1:1); per clip, `turns_per_video` of its yes/no pairs'
    questions. Disjoint from every test item by the split hash."""
    statistics = object_statistics(STATISTICS_POOL, seed)
    rng = random.Random(f"pocket-vlm/train-conversations/{seed}")
    conversations = []
    for scene in scenes("train", images, seed + 1):
        turns = _image_turns(scene, rng, statistics)
        chosen = rng.sample(turns, min(turns_per_image, len(turns)))
        conversations.append(Conversation((payload(scene.shapes),), tuple(chosen)))
    for clip in clips("train", videos, seed + 1):
        turns = _video_turns(clip, rng, statistics)
        if turns:
            chosen = rng.sample(turns, min(turns_per_video, len(turns)))
            conversations.append(Conversation(tuple(clip.payload()), tuple(chosen)))
    rng.shuffle(conversations)
    return conversations


def entropy_of(answers: list[str]) -> float:
    """Disagreement among one question's answers (bits, after VQA's normalisation); for tests and reports."""
    counts = Counter(normalize_answer(a) for a in answers)
    total = sum(counts.values())
    return -sum(c / total * math.log2(c / total) for c in counts.values())
