"""pocket-shapes: procedurally rendered scenes of coloured shapes, with GenEval-style prompt metadata.

A scene is 1–4 shapes (circle, square, triangle) in GenEval's ten colour names, drawn
with hard edges on a grey background (default 32×32 RGB). Each scene answers one
GenEval-style prompt: its ``metadata`` has the fields of GenEval's
``prompts/evaluation_metadata.jsonl`` (``tag``, ``include``, ``exclude`` for counting,
``prompt``), written with GenEval's own templates (``create_prompts.py``: "a photo of …",
its article and plural rules, counts 2–4 with an exclude clause at N+1, the position
clause ``[relation, 0]`` on the second include). Its ``caption`` names every shape with
its colour, left to right, for training a text-to-image model.

Everything is deterministic from a seed. Train and test are disjoint by construction:
a scene's split is a function of a hash of what it draws (image size and shapes), and
each split's generator rejects scenes that hash to the other split. Prompts are shared
across splits on purpose (as GenEval's COCO classes are seen in training); images are not.

Scenes are drawn so that `shapes_detector.detect` recovers them exactly: every shape
fills its square box (each row and column of the box has a pixel of it), and boxes of
a scene are at least one pixel apart, so no two shapes share a connected component.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

SHAPES = ("circle", "square", "triangle")
# GenEval's colour names in GenEval's order (evaluate_images.py COLORS, create_prompts.py colors).
COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "orange": (245, 140, 20), "yellow": (240, 220, 30), "green": (40, 170, 60),
    "blue": (40, 80, 220), "purple": (130, 50, 170), "pink": (240, 130, 190), "brown": (130, 80, 40),
    "black": (20, 20, 20), "white": (245, 245, 245),
}
BACKGROUND = (128, 128, 128)
TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
POSITIONS = ("left of", "right of", "above", "below")
NUMBERS = ("zero", "one", "two", "three", "four")
MAX_COUNT = 4
SPLITS = ("train", "test")
_SPLIT_BUCKETS = {"train": range(0, 90), "test": range(90, 100)}
# Part of every scene id's hash; bump when rendering or layout rules change what a seed draws.
WORLD_VERSION = 1


# --- GenEval's wording (create_prompts.py) ----------------------------------------------
def with_article(name: str) -> str:
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def make_plural(name: str) -> str:
    return f"{name}es" if name[-1] in "s" else f"{name}s"


# --- drawing ----------------------------------------------------------------------------
@lru_cache(maxsize=None)
def shape_mask(kind: str, side: int) -> np.ndarray:
    """The pixels of a `kind` drawn in a `side`×`side` box (pixel centres inside the shape).

    Every row and column of the box is touched, so a shape's pixel bounding box is its box.
    The triangle points up; row r spans half-width (r+1)/2 about the box's centre line.
    """
    if kind not in SHAPES:
        raise ValueError(f"unknown shape {kind!r}; expected one of {SHAPES}")
    centres = np.arange(side) + 0.5 - side / 2
    rows, columns = np.meshgrid(centres, centres, indexing="ij")
    if kind == "square":
        mask = np.ones((side, side), dtype=bool)
    elif kind == "circle":
        mask = rows**2 + columns**2 <= (side / 2) ** 2
    else:
        half_width = (np.arange(side)[:, None] + 1) / 2
        mask = np.abs(columns) <= half_width
    mask.setflags(write=False)
    return mask


def side_range(image_size: int) -> tuple[int, int]:
    """Smallest and largest shape side for an image size (6–11 px at 32×32; at least 5, where
    the three masks differ)."""
    low = max(5, round(image_size * 6 / 32))
    return low, max(low, round(image_size * 11 / 32))


@dataclass(frozen=True)
class Shape:
    kind: str
    color: str
    x: int  # left column of the box
    y: int  # top row of the box
    side: int

    @property
    def box(self) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)`` in pixel-edge coordinates (x1, y1 exclusive), as detectors report boxes."""
        return (float(self.x), float(self.y), float(self.x + self.side), float(self.y + self.side))

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x + self.side / 2, self.y + self.side / 2)

    def record(self) -> dict:
        return {"shape": self.kind, "color": self.color, "box": list(self.box)}


def render(shapes: tuple[Shape, ...] | list[Shape], image_size: int = 32) -> np.ndarray:
    """An ``(image_size, image_size, 3)`` uint8 image of `shapes` on the grey background."""
    image = np.empty((image_size, image_size, 3), dtype=np.uint8)
    image[:] = BACKGROUND
    for shape in shapes:
        window = image[shape.y:shape.y + shape.side, shape.x:shape.x + shape.side]
        window[shape_mask(shape.kind, shape.side)] = PALETTE[shape.color]
    return image


def _apart(a: Shape, b: Shape, gap: int = 1) -> bool:
    """Boxes at least `gap` pixels apart (so not even diagonal neighbours)."""
    return (a.x + a.side + gap <= b.x or b.x + b.side + gap <= a.x
            or a.y + a.side + gap <= b.y or b.y + b.side + gap <= a.y)


def holds(relation: str, a: Shape, b: Shape) -> bool:
    """`a` is clearly `relation` `b`: the boxes are separated along the relation's axis, and the
    centres differ along the other axis by at most 0.1·(side_a + side_b), GenEval's margin.

    Then GenEval's `relative_position` finds exactly this one relation (the other axis's
    offset is absorbed by the margin, and this one's normalised component is over 0.78).
    """
    (ax, ay), (bx, by) = a.centre, b.centre
    margin = 0.1 * (a.side + b.side)
    if relation in ("left of", "right of"):
        separated = a.x + a.side <= b.x if relation == "left of" else b.x + b.side <= a.x
        return separated and abs(ay - by) <= margin
    if relation in ("above", "below"):
        separated = a.y + a.side <= b.y if relation == "above" else b.y + b.side <= a.y
        return separated and abs(ax - bx) <= margin
    raise ValueError(f"unknown relation {relation!r}; expected one of {POSITIONS}")


# --- scenes -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Scene:
    shapes: tuple[Shape, ...]
    metadata: dict = field(hash=False, compare=True)
    image_size: int = 32

    def render(self) -> np.ndarray:
        return render(self.shapes, self.image_size)

    def to_pil(self):
        from PIL import Image

        return Image.fromarray(self.render(), mode="RGB")

    @property
    def caption(self) -> str:
        """Every shape with its colour, left to right (top to bottom on ties), GenEval's wording;
        a position scene says its relation instead."""
        if self.metadata.get("tag") == "position":
            target, subject = self.shapes  # drawn in include order: the target, then the subject
            relation = self.metadata["include"][1]["position"][0]
            return (f"a photo of {with_article(f'{subject.color} {subject.kind}')} {relation} "
                    f"{with_article(f'{target.color} {target.kind}')}")
        ordered = sorted(self.shapes, key=lambda s: (s.centre[0], s.centre[1]))
        names = [with_article(f"{s.color} {s.kind}") for s in ordered]
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"
        return f"a photo of {listed}"

    @property
    def digest(self) -> str:
        return scene_digest(self.shapes, self.image_size)

    def record(self) -> dict:
        """A JSON-ready record: id, split, caption, GenEval metadata and the drawn shapes."""
        return {"id": f"pocket-shapes/{self.metadata['tag']}/{self.digest[:12]}", "split": split_of(self),
                "image_size": self.image_size, "caption": self.caption, "metadata": self.metadata,
                "shapes": [s.record() for s in self.shapes]}


def scene_digest(shapes, image_size: int) -> str:
    drawn = sorted((s.kind, s.color, s.x, s.y, s.side) for s in shapes)
    text = json.dumps({"world": WORLD_VERSION, "size": image_size, "shapes": drawn})
    return hashlib.sha256(text.encode()).hexdigest()


def split_of(scene: Scene) -> str:
    bucket = int(scene.digest[:8], 16) % 100
    return next(name for name, buckets in _SPLIT_BUCKETS.items() if bucket in buckets)


# --- GenEval-style metadata (create_prompts.py's generators, over shapes) ----------------
def metadata_for(tag: str, rng: random.Random) -> dict:
    """One prompt's metadata for `tag`, in the key order of GenEval's evaluation_metadata.jsonl."""
    if tag == "single_object":
        kind = rng.choice(SHAPES)
        return {"tag": tag, "include": [{"class": kind, "count": 1}], "prompt": f"a photo of {with_article(kind)}"}
    if tag == "two_object":
        a, b = rng.sample(SHAPES, 2)
        return {"tag": tag, "include": [{"class": a, "count": 1}, {"class": b, "count": 1}],
                "prompt": f"a photo of {with_article(a)} and {with_article(b)}"}
    if tag == "counting":
        kind, number = rng.choice(SHAPES), rng.randint(2, MAX_COUNT)
        return {"tag": tag, "include": [{"class": kind, "count": number}],
                "exclude": [{"class": kind, "count": number + 1}],
                "prompt": f"a photo of {NUMBERS[number]} {make_plural(kind)}"}
    if tag == "colors":
        kind, color = rng.choice(SHAPES), rng.choice(COLORS)
        return {"tag": tag, "include": [{"class": kind, "count": 1, "color": color}],
                "prompt": f"a photo of {with_article(color)} {kind}"}
    if tag == "position":
        a, b = rng.sample(SHAPES, 2)
        relation = rng.choice(POSITIONS)
        return {"tag": tag, "include": [{"class": b, "count": 1}, {"class": a, "count": 1, "position": [relation, 0]}],
                "prompt": f"a photo of {with_article(a)} {relation} {with_article(b)}"}
    if tag == "color_attr":
        a, b = rng.sample(SHAPES, 2)
        color_a, color_b = rng.sample(COLORS, 2)
        return {"tag": tag, "include": [{"class": a, "count": 1, "color": color_a},
                                        {"class": b, "count": 1, "color": color_b}],
                "prompt": f"a photo of {with_article(color_a)} {a} and {with_article(color_b)} {b}"}
    raise ValueError(f"unknown tag {tag!r}; expected one of {TAGS}")


def evaluation_metadata(per_tag: int = 24, seed: int = 0) -> list[dict]:
    """pocket-geneval's prompts: up to `per_tag` distinct prompts of each tag, in GenEval's tag order.

    Tags with fewer distinct prompts than `per_tag` (single_object has 3) give all they have.
    """
    rng = random.Random(f"pocket-shapes/prompts/{seed}")
    prompts = []
    for tag in TAGS:
        seen: dict[str, dict] = {}
        for _ in range(200 * per_tag):
            if len(seen) == per_tag:
                break
            metadata = metadata_for(tag, rng)
            seen.setdefault(metadata["prompt"], metadata)
        prompts.extend(seen.values())
    return prompts


def scene_for(metadata: dict, rng: random.Random, image_size: int = 32) -> Scene:
    """A scene that satisfies `metadata` exactly: the included shapes and nothing else, unnamed
    colours drawn at random, positions clear under GenEval's rule (see `holds`)."""
    wanted = [(req["class"], req.get("color")) for req in metadata["include"] for _ in range(req["count"])]
    relation = next((req["position"][0] for req in metadata["include"] if "position" in req), None)
    low, high = side_range(image_size)
    high = max(low, high - max(0, len(wanted) - 2))  # room for three or four shapes
    for _ in range(1000):
        shapes: list[Shape] = []
        for kind, color in wanted:
            side = rng.randint(low, high)
            for _ in range(50):
                candidate = Shape(kind, color or rng.choice(COLORS), rng.randint(0, image_size - side),
                                  rng.randint(0, image_size - side), side)
                if all(_apart(candidate, other) for other in shapes):
                    shapes.append(candidate)
                    break
            else:
                break
        if len(shapes) == len(wanted) and (relation is None or holds(relation, shapes[1], shapes[0])):
            return Scene(tuple(shapes), metadata, image_size)
    raise ValueError(f"cannot lay out {metadata['prompt']!r} in {image_size}×{image_size}")


def generate(split: str, size: int, seed: int = 0, tags: tuple[str, ...] = TAGS, image_size: int = 32) -> list[Scene]:
    """`size` distinct scenes of `split`, deterministic in (split, size, seed, tags, image_size)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    rng = random.Random(f"pocket-shapes/{split}/{seed}/{image_size}")
    scenes: dict[str, Scene] = {}
    for _ in range(200 * size + 1000):
        if len(scenes) == size:
            return list(scenes.values())
        scene = scene_for(metadata_for(rng.choice(tags), rng), rng, image_size)
        if split_of(scene) == split and scene.digest not in scenes:
            scenes[scene.digest] = scene
    raise ValueError(f"pocket-shapes cannot produce {size} distinct {split} scenes with these settings")


def write_geneval_folder(prompts: list[dict], folder: str | Path, samples_per_prompt: int = 4, seed: int = 0,
                         image_size: int = 32) -> Path:
    """Oracle images for `prompts` in GenEval's folder layout (``<NNNNN>/metadata.jsonl``,
    ``<NNNNN>/samples/<NNNN>.png``): what a perfect text-to-image model would draw."""
    folder = Path(folder)
    rng = random.Random(f"pocket-shapes/oracle/{seed}")
    for index, metadata in enumerate(prompts):
        samples = folder / f"{index:05}" / "samples"
        samples.mkdir(parents=True, exist_ok=True)
        (folder / f"{index:05}" / "metadata.jsonl").write_text(json.dumps(metadata) + "\n")
        for sample in range(samples_per_prompt):
            scene_for(metadata, rng, image_size).to_pil().save(samples / f"{sample:04}.png")
    return folder
