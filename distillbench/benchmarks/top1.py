"""Top-1 accuracy of an image classifier: ``top1`` on any image source, ``cifar100`` on CIFAR-100's test set.

An item is one test image (id ``<task>/<scene digest>`` for pocket-shapes, ``test/<index:05>`` for
CIFAR-100); the model's output for it is the list of its top-5 class indices (fewer when there are
fewer classes), best first, from the argmax of the logits on the normalised, unaugmented image
(exact ties go to the lower class index and NaN logits rank last, on every device: ``top_classes``).
``accuracy`` is 1 when the first index is the label (top-1, the number CIFAR tables report), ``top5``
when any of them is (only with more than five classes, and only for outputs of at least five indices: a
predictions file of single indices gets no top-5). Both are per-item 0/1, so leaderboard CIs and McNemar tests between rows apply.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any

import torch
from annotated_types import Gt

from distillbench.core.classes import top_classes
from distillbench.core.errors import UserInputError
from distillbench.core.inputs import input_absent

from distillbench.benchmarks.base import Benchmark, ItemScore, register_benchmark
from distillbench.kinds.image_classifier.images import cifar100_folder, image_source_problem, load_image_dataset


class _Top1(ABC):
    """Items, prediction and scoring shared by the two benchmarks (their fields say which data)."""

    binary_metrics = ("accuracy", "top5")

    @abstractmethod
    def _source(self) -> str:
        """The image dataset (a pocket task or a CIFAR-100 folder)."""

    def _split(self) -> str:
        return "test"

    def _limit(self) -> int | None:
        return None

    def data(self):
        # Cached on the instance (frozen dataclasses keep a cached_property's value in __dict__).
        return self._data

    @cached_property
    def _data(self):
        return load_image_dataset(self._source(), self._split(), self._limit())

    def num_classes(self) -> int | None:
        """The test set's classes; None while its folder is absent (`--check` on another machine)."""
        return None if input_absent(self._source()) else self.data().num_classes

    def items(self) -> list[dict[str, Any]]:
        data = self.data()
        captions = data.captions or ("",) * len(data)
        return [{"id": item_id, "index": index, "label": int(label), "answer": data.class_names[int(label)],
                 **({"question": f"class of the largest shape in: {caption}"} if caption else {})}
                for index, (item_id, label, caption) in enumerate(zip(data.ids, data.labels.tolist(), captions))]

    @torch.no_grad()
    def predict(self, model, tokenizer, items, *, batch_size):
        data = self.data()
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        k = min(5, data.num_classes)
        outputs = []
        for start in range(0, len(items), batch_size):
            indices = [item["index"] for item in items[start:start + batch_size]]
            logits = model(data.batch(indices).to(device)).float()
            outputs += top_classes(logits, k)
        model.train(was_training)
        return outputs

    def score(self, item, output) -> ItemScore:
        ranked = _ranked(output)
        names = self.data().class_names
        correct = float(bool(ranked) and ranked[0] == item["label"])
        values = {"accuracy": correct}
        if self.num_classes() > 5 and len(ranked) >= 5:  # fewer than five guesses cannot be scored as top-5
            values["top5"] = float(item["label"] in ranked[:5])
        predicted = names[ranked[0]] if names and ranked and 0 <= ranked[0] < len(names) else (ranked[:1] or "nothing")
        reason = "correct" if correct else f"predicted {predicted!r}, label {item['answer']!r}"
        return ItemScore(values, reason)

    def item_from_gold(self, item_id: str, gold: str) -> dict[str, Any]:
        names = self.data().class_names
        label = int(gold) if gold.strip().lstrip("-").isdigit() else (names.index(gold) if gold in names else None)
        if label is None or not 0 <= label < len(names):
            raise UserInputError(f"{item_id}: gold {gold!r} is neither a class index nor a class name")
        return {"id": item_id, "label": label, "answer": names[label]}

    def protocol(self) -> dict[str, Any]:
        if input_absent(self._source()):  # `--check` elsewhere: what the recipe says, nothing read
            return {"scorer_version": self.scorer_version, "dataset": self._source(), "split": self._split()}
        data = self.data()
        digest = hashlib.sha256(data.images.numpy().tobytes() + data.labels.numpy().tobytes()).hexdigest()[:16]
        return {"scorer_version": self.scorer_version, "dataset": self._source(), "split": self._split(),
                "items": len(data), "classes": data.num_classes, "data_hash": digest,
                "preprocessing": f"no augmentation; normalised with mean {list(data.mean)}, std {list(data.std)}",
                "metric": "top-1 (and top-5) of the logits' argmax; ties to the lower class index"}


def _ranked(output) -> list[int]:
    """The predicted classes, best first, from a list of indices or a single index (score-only files)."""
    if isinstance(output, (int, str)):
        output = [output]
    try:
        return [int(value) for value in output]
    except (TypeError, ValueError):
        raise UserInputError(f"a classifier output must be a class index or a list of them, got {output!r}") from None


@register_benchmark("top1", family="classify", paper="top-1 accuracy",
                    summary="top-1 / top-5 accuracy on an image dataset: pocket-shapes tasks or a CIFAR-100 folder")
@dataclass(frozen=True)
class Top1(_Top1, Benchmark):
    """Top-1 accuracy on the test split of an image source (a recipe's data.source syntax)."""

    dataset: str = "pocket:shapes-many"
    split: str = "test"
    n: Annotated[int, Gt(0)] | None = None  # pocket: 1000 generated; files: all

    def check(self):
        problem = image_source_problem(self.dataset)
        return [f"dataset: {problem}"] if problem else []

    def _source(self):
        return self.dataset

    def _split(self):
        return self.split

    def _limit(self):
        return self.n


@register_benchmark("cifar100", family="classify", paper="Krizhevsky 2009 (CIFAR-100)",
                    summary="CIFAR-100 test top-1 / top-5 accuracy (10,000 images) from a local torchvision folder")
@dataclass(frozen=True)
class Cifar100(_Top1, Benchmark):
    """CIFAR-100's 10,000 test images, read from a local folder in torchvision's layout."""

    root: str

    def check(self):
        return [] if cifar100_folder(self.root) or input_absent(self.root) else [f"root: no CIFAR-100 folder at {self.root} "
                                                      "(expected cifar-100-python/{train,test,meta})"]

    def _source(self):
        return self.root
