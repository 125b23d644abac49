"""Fixtures for the classify tests: a tiny CIFAR-100 folder in torchvision's layout."""

import pickle
from pathlib import Path

import numpy as np
import pytest


def write_fake_cifar100(root: Path, train: int = 48, test: int = 24, seed: int = 0) -> Path:
    """``root/cifar-100-python/{train,test,meta}`` as torchvision's CIFAR-100 pickles (random pixels)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", train), ("test", test)):
        data = {b"filenames": [f"{split}_{i}.png".encode() for i in range(count)],
                b"fine_labels": [int(x) for x in rng.integers(0, 100, count)],
                b"coarse_labels": [int(x) for x in rng.integers(0, 20, count)],
                b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8)}
        (folder / split).write_bytes(pickle.dumps(data, protocol=2))
    meta = {b"fine_label_names": [f"class{i:02d}".encode() for i in range(100)],
            b"coarse_label_names": [f"super{i:02d}".encode() for i in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return root


@pytest.fixture
def fake_cifar100(tmp_path) -> Path:
    return write_fake_cifar100(tmp_path / "cifar100")
