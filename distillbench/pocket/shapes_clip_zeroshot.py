"""The pocket CLIP's zero-shot classifiers for the pocket-shapes tasks: the vision-language teachers.

``pocket:shapes-clip-zeroshot-<task>`` is the pocket CLIP (`shapes_clip`) turned into a zero-shot
classifier of a pocket-shapes task (`distillbench.kinds.image_classifier.clip_zeroshot`), with prompts in the wording
of the captions the CLIP was trained on, ensembled where a class covers several captions:

* ``many``    one prompt per class: "a photo of a red circle";
* ``shape``   "a photo of a <colour> <shape>" for every colour;
* ``binary``  "a photo of a <colour> <shape>" for every warm (cool) colour and every shape.

Nothing is trained: building takes seconds (embedding the prompts and scoring the test split), into
the user cache, keyed by the CLIP's weights and the prompt version. ``classifier.json`` records the
zero-shot top-1 on 1,000 test scenes. A scene's label is its largest shape while its caption names
every shape, so on the 30-class task the zero-shot teacher is far below the supervised one: the
setting of DHO, whose teacher is CLIP's zero-shot classifier.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from distillbench.core.registry import POCKET_MODELS
from distillbench.kinds.image_classifier.classifiers import save_atomic
from distillbench.kinds.image_classifier.clip_zeroshot import zero_shot_classifier
from distillbench.pocket import shapes_clip, shapes_text
from distillbench.pocket.shapes import COLORS, SHAPES, with_article
from distillbench.pocket.shapes_classifiers import NORMALISATION, TASKS, TASKS_VERSION, WARM, test_accuracy
from distillbench.pocket.zoo import cache_root

PROMPTS_VERSION = 1  # bump when the prompts below change
ZERO_SHOT = {f"shapes-clip-zeroshot-{task}": task for task in TASKS}  # zoo name -> its task


def class_prompts(task: str) -> list[list[str]]:
    """Per class of `task`, its prompts in the captions' wording."""
    def photo(colors, kinds) -> list[str]:
        return [f"a photo of {with_article(f'{color} {kind}')}" for color in colors for kind in kinds]

    if task == "many":
        return [[f"a photo of {with_article(name)}"] for name in TASKS["many"]]
    if task == "shape":
        return [photo(COLORS, [kind]) for kind in SHAPES]
    if task == "binary":
        return [photo([c for c in COLORS if (c in WARM) == warm], SHAPES) for warm in (False, True)]
    raise ValueError(f"unknown pocket-shapes task {task!r}; known: {', '.join(TASKS)}")


def _key(task: str, clip_config: dict) -> str:
    # The CLIP's weights, not only its spec: a rebuild elsewhere need not be bitwise the shipped copy.
    described = {"task": task, "clip_weights": clip_config["weights_sha256"], "prompts": PROMPTS_VERSION,
                 "tasks": TASKS_VERSION}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:12]


def ensure_built(task: str) -> Path:
    """The directory of the zero-shot classifier for `task`, built when missing."""
    clip_directory = shapes_clip.default_directory()
    clip_config = json.loads((clip_directory / shapes_clip.CONFIG).read_text())
    target = cache_root() / f"shapes-clip-zeroshot-{task}-{_key(task, clip_config)}"
    if not (target / "classifier.json").is_file():
        build(task, clip_directory, target)
    return target


def ensure_named(name: str) -> Path:
    """The zero-shot classifier of the zoo name ``shapes-clip-zeroshot-<task>``, built when missing."""
    return ensure_built(ZERO_SHOT[name])


for _name, _task in ZERO_SHOT.items():  # `pocket:<name>` references resolve here
    POCKET_MODELS.register(_name, family="classify", summary=f"zero-shot classifier of the pocket CLIP, task {_task}")(
        ensure_named)


def build(task: str, clip_directory: Path, target: Path) -> dict:
    model, tokenizer, clip_config = shapes_clip.load(clip_directory)
    if (tuple(clip_config["image_mean"]), tuple(clip_config["image_std"])) != NORMALISATION:
        raise ValueError(f"{clip_directory}: the CLIP's image normalisation differs from pocket-shapes' datasets")
    classifier = zero_shot_classifier(model, json.loads((clip_directory / shapes_clip.MODEL_CONFIG).read_text()),
                                      lambda texts: shapes_text.token_ids(tokenizer, texts), class_prompts(task))
    report = {"task": task, "clip_spec_hash": clip_config["spec_hash"],
              "clip_weights_sha256": clip_config["weights_sha256"], "prompts_version": PROMPTS_VERSION,
              "prompts": class_prompts(task), "test_accuracy": test_accuracy(classifier, task)}
    save_atomic(classifier, target, extra=report)
    return report
