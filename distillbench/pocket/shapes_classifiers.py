"""pocket-shapes classification: three tasks over the pocket-shapes scenes, and the classifier zoo trained on them.

A scene's label is read off its largest shape (the one with the longest side; scenes whose longest
side is shared by two shapes are left out, so the image always determines the label):

* ``pocket:shapes-many``   30 classes: colour × shape of the largest shape ("red circle", ...);
* ``pocket:shapes-shape``   3 classes: its shape (few-class distillation);
* ``pocket:shapes-binary``  2 classes: whether its colour is warm (red, orange, yellow, pink, brown).

Train and test come from pocket-shapes' disjoint splits (`shapes.generate`), deterministic from a
seed. Item ids are ``<task>/<scene digest>``.

The zoo holds one teacher per task (``pocket:shapes-teacher-<task>``), the CNN ``shapes-cnn``
trained with the harness's own loop and the ``ce`` method; students start from scratch as
``arch:shapes-cnn-small`` (about 15× fewer multiply-adds, 16× fewer parameters). A copy trained by
exactly ``python -m distillbench.pocket.shapes_classifiers --export`` ships in
``distillbench/pocket/shapes_zoo/`` (``classifier.json`` records the spec, its hash, the weights'
sha256 and the test accuracy) and is used while its spec hash matches; otherwise the teacher is
trained into the user cache. ``DISTILLBENCH_ZOO_SCALE=tiny`` selects specs that train in seconds.
The pocket CLIP's zero-shot classifiers, ``pocket:shapes-clip-zeroshot-<task>``, are built from the
CLIP instead (`shapes_clip_zeroshot`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from distillbench.core.errors import UserInputError
from distillbench.core.recipe import Budget
from distillbench.core.registry import POCKET_DATA, POCKET_MODELS
from distillbench.core.train import train
from distillbench.kinds.image_classifier.classifiers import initialised, save_atomic
from distillbench.kinds.image_classifier.images import ImageBatching, ImageDataset
from distillbench.methods.classify.ce import CE
from distillbench.pocket import builds
from distillbench.pocket.shapes import COLORS, SHAPES, WORLD_VERSION, Scene, generate
from distillbench.pocket.zoo import cache_root

PACKAGED = Path(__file__).parent / "shapes_zoo"
WARM = ("red", "orange", "yellow", "pink", "brown")
TASKS = {
    "many": tuple(f"{color} {shape}" for shape in SHAPES for color in COLORS),
    "shape": SHAPES,
    "binary": ("cool", "warm"),
}
SOURCES = tuple(f"pocket:shapes-{task}" for task in TASKS)
# Part of every pocket image data fingerprint; bump when labels or scene selection change.
TASKS_VERSION = f"tasks1-world{WORLD_VERSION}"
# (mean, std) per channel of the datasets' normalisation: the scenes' grey background maps to 0.
NORMALISATION = ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
DEFAULT_SIZES = {"train": 6000, "test": 1000}


def largest(scene: Scene):
    """The shape with the longest side, or None when two shapes share it."""
    longest = max(shape.side for shape in scene.shapes)
    candidates = [shape for shape in scene.shapes if shape.side == longest]
    return candidates[0] if len(candidates) == 1 else None


def label(task: str, scene: Scene) -> int:
    shape = largest(scene)
    if task == "many":
        return TASKS[task].index(f"{shape.color} {shape.kind}")
    if task == "shape":
        return SHAPES.index(shape.kind)
    return int(shape.color in WARM)


@lru_cache(maxsize=8)
def _scenes(split: str, size: int, seed: int) -> tuple[Scene, ...]:
    # generate(split, n) is a prefix of generate(split, m) for n < m (one random stream), so asking
    # for more and filtering keeps the first `size` unambiguous scenes the same whatever the margin.
    wanted = int(size * 1.25) + 50
    while True:
        scenes = [s for s in generate(split, wanted, seed=seed) if largest(s) is not None]
        if len(scenes) >= size:
            return tuple(scenes[:size])
        wanted *= 2


@lru_cache(maxsize=8)
def _dataset(task: str, split: str, size: int, seed: int):
    scenes = _scenes(split, size, seed)
    images = torch.from_numpy(np.stack([s.render() for s in scenes])).permute(0, 3, 1, 2)
    labels = torch.tensor([label(task, s) for s in scenes], dtype=torch.long)
    ids = tuple(f"{task}/{s.digest[:12]}" for s in scenes)
    return ImageDataset(f"pocket:shapes-{task}", split, images.contiguous(), labels, TASKS[task],
                        *NORMALISATION, ids, tuple(s.caption for s in scenes))


def pocket_dataset(source: str, split: str, size: int | None = None, seed: int = 0):
    if source not in SOURCES:
        raise ValueError(f"unknown pocket image dataset {source!r}; known: {', '.join(SOURCES)}")
    if split not in DEFAULT_SIZES:
        raise ValueError(f"pocket-shapes split {split!r}: expected one of {tuple(DEFAULT_SIZES)}")
    return _dataset(source.removeprefix("pocket:shapes-"), split, size or DEFAULT_SIZES[split], seed)


def data_fingerprint(source: str) -> str:
    """What a cell key records of a task: its name and the tasks' version."""
    return f"{source}@{TASKS_VERSION}"


for _task, _source in zip(TASKS, SOURCES):  # the image-classifier kind reads them as data.source
    POCKET_DATA.register(_source, family="images", fingerprint=data_fingerprint,
                         summary=f"pocket-shapes scenes labelled by their largest shape: {_task} "
                         f"({len(TASKS[_task])} classes)")(pocket_dataset)


# --- the zoo ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TeacherSpec:
    task: str
    architecture: str = "shapes-cnn"
    train_size: int = 6000
    steps: int = 1200
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 5e-4
    augment: str = "flip"
    seed: int = 0
    tasks_version: str = TASKS_VERSION

    def spec_hash(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


_FULL = {f"shapes-teacher-{task}": TeacherSpec(task) for task in TASKS}
_TINY = {f"shapes-teacher-{task}": TeacherSpec(task, train_size=128, steps=4, batch_size=16) for task in TASKS}


def specs() -> dict[str, TeacherSpec]:
    return _TINY if os.environ.get("DISTILLBENCH_ZOO_SCALE") == "tiny" else _FULL


def _spec_hash_of(directory: Path) -> str | None:
    config = directory / "classifier.json"
    if not config.is_file():
        return None
    return json.loads(config.read_text()).get("extra", {}).get("spec_hash")


def cache_directory(name: str) -> Path:
    return cache_root() / f"{name}-{specs()[name].spec_hash()}"


def ensure_built(name: str) -> Path:
    """The shipped copy of `name` when its spec hash matches, else the user-cache build (trained when missing)."""
    if name not in specs():
        raise UserInputError(f"unknown pocket classifier {name!r}; known: {', '.join(specs())}")
    spec = specs()[name]
    if _spec_hash_of(PACKAGED / name) == spec.spec_hash():
        return PACKAGED / name
    directory = cache_directory(name)
    if _spec_hash_of(directory) != spec.spec_hash():
        build(name, directory)
    return directory


for _name, _spec in _FULL.items():  # `pocket:<name>` references resolve here
    POCKET_MODELS.register(_name, family="classify", summary=f"pocket-shapes teacher CNN, task {_spec.task}")(
        ensure_built)


def build(name: str, target: Path) -> dict:
    """Train `name` with the harness's loop (method `ce`), score it on the test split, save it atomically."""
    spec = specs()[name]
    started = time.perf_counter()
    data = pocket_dataset(f"pocket:shapes-{spec.task}", "train", spec.train_size, spec.seed)
    model = initialised(spec.architecture, data.num_classes, spec.seed)
    budget = Budget(steps=spec.steps, batch_size=spec.batch_size, learning_rate=spec.learning_rate,
                    weight_decay=spec.weight_decay, warmup_steps=min(100, spec.steps // 10),
                    checkpoint_every=max(1, spec.steps // 4))
    work = target.with_name(target.name + ".build")
    train(CE(), model, data, budget, spec.seed, work / "checkpoint",
          batching=ImageBatching(data, spec.augment, spec.batch_size), description=f"zoo {name}")
    report = {"spec": asdict(spec), "spec_hash": spec.spec_hash(), "test_accuracy": test_accuracy(model, spec.task),
              "parameters": sum(p.numel() for p in model.parameters()),
              "build_seconds": round(time.perf_counter() - started, 1), "torch": torch.__version__}
    save_atomic(model, target, extra=report)
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return report


@torch.no_grad()
def test_accuracy(model: nn.Module, task: str, size: int | None = None) -> float:
    data = pocket_dataset(f"pocket:shapes-{task}", "test", size)
    model.eval()
    correct = 0
    for start in range(0, len(data), 256):
        indices = range(start, min(start + 256, len(data)))
        correct += int((model(data.batch(indices)).argmax(1) == data.labels[start:start + 256]).sum())
    return round(correct / len(data), 4)


def main(argv: list[str] | None = None) -> int:
    # the zero-shot classifiers are built from the CLIP, not trained here
    return builds.command_line(argv, module="distillbench.pocket.shapes_classifiers",
                               description="Train the pocket-shapes teacher classifiers.", build=build,
                               cache_directory=cache_directory, names=list(_FULL), packaged=PACKAGED, output=False)


if __name__ == "__main__":
    raise SystemExit(main())
