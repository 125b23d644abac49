"""Image classification data: datasets, augmentation, and the batches the train loop gives classify methods.

A source is
  * a pocket image dataset (`POCKET_DATA`, family ``images``): ``pocket:shapes-many`` /
    ``pocket:shapes-shape`` / ``pocket:shapes-binary``, pocket-shapes scenes labelled by their largest
    shape (`distillbench.pocket.shapes_classifiers`), or
  * a local folder in torchvision's CIFAR-100 layout (``cifar-100-python/{train,test,meta}``, the
    pickled python version; the folder itself or its parent). The pickles are read with an
    unpickler that admits only numpy arrays, so a hostile file cannot run code.

Images are kept as uint8 [N, 3, H, W]; a batch is cast to float, scaled to [0, 1] and normalised
with the dataset's mean and std (CIFAR-100: RepDistiller's constants). Training augmentation is a
function of (seed, step), like the data order, so a resumed run sees the same pixels:
``flip`` (horizontal, p = 0.5) or ``crop-flip`` (4-pixel zero padding and a random 32×32 crop, then
the flip: the CIFAR recipe of RepDistiller and mdistiller).
"""

from __future__ import annotations

import hashlib
import io
import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distillbench.core.errors import UserInputError
from distillbench.core.inputs import ABSENT_FINGERPRINT, absent_allowed, input_absent
from distillbench.core.registry import POCKET_DATA
from distillbench.core.train import consecutive_parts, example_indices

AUGMENTATIONS = ("none", "flip", "crop-flip")
CROP_PADDING = 4
# RepDistiller dataset/cifar100.py and mdistiller mdistiller/dataset/cifar100.py (the same values).
CIFAR100_MEAN = (0.5071, 0.4867, 0.4408)
CIFAR100_STD = (0.2675, 0.2565, 0.2761)
CIFAR100_FOLDER = "cifar-100-python"


@dataclass(frozen=True, eq=False)
class ImageDataset:
    name: str  # the source it was read from
    split: str
    images: torch.Tensor  # uint8 [N, 3, H, W]
    labels: torch.Tensor  # int64 [N]
    class_names: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    ids: tuple[str, ...]  # stable item ids
    captions: tuple[str, ...] = ()  # pocket: what each scene draws (for auditing items)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def batch(self, indices, augment: str = "none", generator: torch.Generator | None = None) -> torch.Tensor:
        """Normalised float images [B, 3, H, W] of `indices`, augmented with `generator`'s draws."""
        images = self.images[torch.as_tensor(list(indices), dtype=torch.long)]
        if augment != "none":
            images = augment_batch(images, augment, generator)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (images.float() / 255.0 - mean) / std


def augment_batch(images: torch.Tensor, augment: str, generator: torch.Generator) -> torch.Tensor:
    """uint8 [B, 3, H, W] → the same, cropped from a zero-padded copy (crop-flip) and flipped (p = 0.5)."""
    if augment not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {augment!r}; expected one of {AUGMENTATIONS}")
    count, _, height, width = images.shape
    if augment == "crop-flip":
        padded = torch.nn.functional.pad(images, (CROP_PADDING,) * 4)
        offsets = torch.randint(0, 2 * CROP_PADDING + 1, (count, 2), generator=generator)
        images = torch.stack([padded[i, :, y:y + height, x:x + width] for i, (y, x) in enumerate(offsets.tolist())])
    flips = torch.rand(count, generator=generator) < 0.5
    return torch.where(flips.view(-1, 1, 1, 1), images.flip(3), images)


# --- sources ---------------------------------------------------------------------------------
def pocket_image_sources() -> list[str]:
    """The registered pocket image datasets (imports every pocket data plug-in)."""
    return [entry.name for entry in POCKET_DATA.entries(family="images")]


def is_pocket_image_source(source: str) -> bool:
    """Whether `source` is a registered pocket image dataset (imports its plug-in only)."""
    return source in POCKET_DATA and POCKET_DATA.entry(source).family == "images"


def cifar100_folder(path: str | Path) -> Path | None:
    """The ``cifar-100-python`` folder at or under `path`, or None."""
    path = Path(path)
    for candidate in (path, path / CIFAR100_FOLDER):
        if all((candidate / name).is_file() for name in ("train", "test", "meta")):
            return candidate
    return None


def is_image_source(source: str | None) -> bool:
    """Whether a data source is an image classification dataset (not text)."""
    if not source:
        return False
    if source.startswith("pocket:"):
        return is_pocket_image_source(source)
    return Path(source).is_dir() and cifar100_folder(source) is not None


def image_source_problem(source: str) -> str | None:
    """Why `source` cannot be read as an image dataset, or None."""
    if source.startswith("pocket:"):
        if is_pocket_image_source(source):
            return None
        return f"unknown pocket dataset; known: {', '.join(pocket_image_sources())}"
    if not Path(source).exists():
        return None if absent_allowed(source) else f"folder not found: {source}"
    if cifar100_folder(source) is None:
        return (f"{source}: not an image classification folder (expected torchvision's CIFAR-100 layout, "
                f"{CIFAR100_FOLDER}/train, test, meta)")
    return None


def readable_image_source(source: str) -> str:
    """`source`, or ValueError saying why it cannot be read as an image dataset (a recipe validator's check)."""
    problem = image_source_problem(source)
    if problem:
        raise ValueError(problem)
    return source


def load_image_dataset(source: str, split: str, size: int | None = None) -> ImageDataset:
    """The `split` of an image source; `size` takes the first examples (pocket: generates that many)."""
    problem = image_source_problem(source)
    if problem:
        raise UserInputError(problem)
    if source.startswith("pocket:"):
        return POCKET_DATA.get(source)(source, split, size)
    dataset = _cifar100(str(cifar100_folder(source)), split)
    return dataset if size is None or size >= len(dataset) else _head(dataset, size)


def _head(dataset: ImageDataset, size: int) -> ImageDataset:
    return ImageDataset(dataset.name, dataset.split, dataset.images[:size], dataset.labels[:size],
                        dataset.class_names, dataset.mean, dataset.std, dataset.ids[:size], dataset.captions[:size])


class _ArraysOnly(pickle.Unpickler):
    """Unpickles dicts, lists, strings, bytes, numbers and numpy arrays; nothing that can run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_pickle(path: Path) -> dict:
    try:
        data = _ArraysOnly(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise UserInputError(f"{path}: not a CIFAR pickle ({exc})") from None
    if not isinstance(data, dict):
        raise UserInputError(f"{path}: not a CIFAR pickle (expected a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


@lru_cache(maxsize=4)
def _cifar100(folder: str, split: str) -> ImageDataset:
    if split not in ("train", "test"):
        raise UserInputError(f"CIFAR-100 split {split!r}: expected 'train' or 'test'")
    root = Path(folder)
    data = _read_pickle(root / split)
    meta = _read_pickle(root / "meta")
    try:
        pixels = np.asarray(data["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(data["fine_labels"], dtype=np.int64)
        names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta["fine_label_names"])
    except (KeyError, ValueError) as exc:
        raise UserInputError(f"{root / split}: missing or malformed CIFAR-100 field ({exc})") from None
    if len(labels) != len(pixels) or (len(labels) and (labels.min() < 0 or labels.max() >= len(names))):
        raise UserInputError(f"{root / split}: {len(pixels)} images, {len(labels)} labels, "
                             f"labels outside 0..{len(names) - 1}")
    ids = tuple(f"{split}/{index:05d}" for index in range(len(labels)))
    return ImageDataset(str(folder), split, torch.from_numpy(pixels.copy()), torch.from_numpy(labels), names,
                        CIFAR100_MEAN, CIFAR100_STD, ids)


def hide_labels(dataset: ImageDataset, labeled_per_class: int) -> ImageDataset:
    """Few-shot semi-supervised data: the first `labeled_per_class` examples of each class keep their
    label, every other example's label becomes −1 (unlabeled)."""
    labels = torch.full_like(dataset.labels, -1)
    seen: dict[int, int] = {}
    for index, label in enumerate(dataset.labels.tolist()):
        if seen.get(label, 0) < labeled_per_class:
            seen[label] = seen.get(label, 0) + 1
            labels[index] = label
    return ImageDataset(dataset.name, dataset.split, dataset.images, labels, dataset.class_names, dataset.mean,
                        dataset.std, dataset.ids, dataset.captions)


def image_data_fingerprint(source: str) -> str:
    """What a cell key records of an image source: what its pocket world says, or the files' sha256."""
    if source.startswith("pocket:"):
        return POCKET_DATA.entry(source).extra["fingerprint"](source)
    if input_absent(source):
        return ABSENT_FINGERPRINT
    folder = cifar100_folder(source)
    digest = hashlib.sha256()
    for name in ("meta", "train", "test"):
        digest.update(hashlib.sha256((folder / name).read_bytes()).digest())
    return digest.hexdigest()[:16]


# --- the train loop's side ---------------------------------------------------------------------
class ImageBatching:
    """How the train loop turns example indices into a classify method's batch (the `Batching` of core/train.py,
    not subclassed: that would load the train loop's libraries wherever image data is read).

    A batch holds ``images`` (normalised, augmented) [B, 3, H, W], ``labels`` [B], ``epoch`` (1-based,
    for warm-ups counted in epochs, as mdistiller's) and the teacher's signals a method needs:
    ``teacher_logits`` [B, C] and ``teacher_features`` [B, D] (the teacher's penultimate features),
    computed on the same augmented images in eval mode, and ``source_features`` (a list of [B, D_s], the
    penultimate features of each of the method's `source_teachers`, for multi-source methods).

    Semi-supervised data (labels −1 on the unlabeled examples, `hide_labels`) is drawn as DHO's two
    loaders draw it: every step `batch_size` labeled examples, then `batch_size` unlabeled ones, each
    pool in its own seeded order; epochs count passes over the unlabeled pool.
    """

    unit = "images"

    def __init__(self, dataset: ImageDataset, augment: str, batch_size: int):
        self.dataset = dataset
        self.augment = augment
        labeled = dataset.labels >= 0
        self.semi_supervised = not bool(labeled.all())
        self.labeled = torch.nonzero(labeled).flatten().tolist()
        self.unlabeled = torch.nonzero(~labeled).flatten().tolist()
        pool = self.unlabeled if self.semi_supervised else self.labeled
        self.steps_per_epoch = max(1, len(pool) // batch_size)

    def prepare(self, run, method) -> int:
        return 0  # nothing to check or compute ahead: the teacher's signals depend on each step's augmentation

    def lengths(self, examples) -> tuple[int, ...]:
        return (1,) * len(self.dataset)

    def step_indices(self, lengths: tuple[int, ...], batch_size: int, seed: int, step: int,
                     group_by_length: bool = False) -> list[int]:
        if not self.semi_supervised:
            return example_indices(lengths, batch_size, seed, step)
        labeled = example_indices((1,) * len(self.labeled), batch_size, seed, step)
        unlabeled = example_indices((1,) * len(self.unlabeled), batch_size, seed, step)
        return [self.labeled[i] for i in labeled] + [self.unlabeled[i] for i in unlabeled]

    def split_step(self, indices: list[int], budget) -> list[list[int]]:
        """Micro-batches for gradient accumulation. A semi-supervised step (its labeled batch, then its
        unlabeled one) is cut so that every micro-batch holds its share of both: a loss that averages its
        labeled and its unlabeled rows separately (DHO's) then accumulates to the whole step's loss."""
        if not self.semi_supervised:
            return consecutive_parts(indices, budget)
        half = len(indices) // 2
        labeled, unlabeled = consecutive_parts(indices[:half], budget), consecutive_parts(indices[half:], budget)
        return [a + b for a, b in zip(labeled, unlabeled)]

    def collate(self, examples, indices: list[int], seed: int, step: int, part: int, device) -> dict[str, Any]:
        generator = torch.Generator().manual_seed((seed * 1_000_003 + step) * 1_009 + part)
        return {"images": self.dataset.batch(indices, self.augment, generator).to(device),
                "labels": self.dataset.labels[torch.as_tensor(indices)].to(device),
                "example_index": list(indices), "epoch": step // self.steps_per_epoch + 1}

    @torch.no_grad()
    def add_signals(self, batch: dict, method, frozen: dict) -> int:
        needs, forwards = method.needs, 0
        if "source_features" in needs:  # one [B, D_s] tensor per source teacher, in method.source_teachers order
            batch["source_features"] = [frozen[f"source:{ref}"].forward_features(batch["images"])[1]
                                        for ref in method.source_teachers]
            forwards += len(batch["images"]) * len(method.source_teachers)
        if "teacher_logits" not in needs and "teacher_features" not in needs:
            return forwards
        logits, features = frozen["teacher"].forward_features(batch["images"])
        batch["teacher_logits"] = logits
        if "teacher_features" in needs:
            batch["teacher_features"] = features
        return forwards + len(batch["images"])

    def count(self, batch: dict) -> int:
        return len(batch["images"])

    def weight_count(self, batch: dict, normalize_by: str) -> int:
        return len(batch["images"])
