"""The pocket feature network for FID/KID on pocket-shapes: a tiny CNN trained to classify scenes.

It plays Inception-v3's role at pocket scale: a network trained on a classification task
of the image domain whose penultimate activations (128-d: the last map's spatial mean and
max) are the features FID and KID compare. Its task is, per scene, which (shape, colour)
pairs appear (30 binary labels) and how many of each shape there are (0–4, three 5-way
heads), so its features see colour, shape and count. On 500 held-out scenes the shipped copy
gets 98% of the per-shape counts right, but all 30 presence labels of a scene right only 28%
of the time (96% of single labels, against 94% for always answering "absent"): it is a
feature extractor, not a detector (config.json has the numbers).

Weights are saved with safetensors beside a ``config.json`` (the spec, its hash, the weights'
sha256 and the held-out accuracy). A copy trained by exactly ``python -m
distillbench.pocket.shapes_features --export`` ships in ``distillbench/pocket/shapes_zoo/``
and is used while its spec hash matches; otherwise the network is trained into the user
cache (1,500 steps: about 4 CPU-minutes, measured on one core).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from distillbench.core.registry import POCKET_NETWORKS
from distillbench.pocket import builds
from distillbench.pocket.shapes import COLORS, MAX_COUNT, SHAPES, generate
from distillbench.pocket.zoo import cache_root

PACKAGED = Path(__file__).parent / "shapes_zoo" / "feature-net"
WEIGHTS, CONFIG = "model.safetensors", "config.json"
FEATURE_DIM = 128


@dataclass(frozen=True)
class FeatureNetSpec:
    image_size: int = 32
    train_scenes: int = 4000
    steps: int = 1500
    batch_size: int = 64
    learning_rate: float = 1e-2
    seed: int = 0
    world_version: int = 1  # shapes.WORLD_VERSION when trained

    def spec_hash(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


class ShapesFeatureNet(nn.Module):
    """Three 3×3 convolutions (32, 64, 64 channels) with ReLU, batch norm and 2×2 max pools
    between them; the final map's spatial mean and max, concatenated → 128-d features;
    linear heads for (shape, colour) presence and per-shape counts."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
        )
        self.presence = nn.Linear(FEATURE_DIM, len(SHAPES) * len(COLORS))
        self.counts = nn.Linear(FEATURE_DIM, len(SHAPES) * (MAX_COUNT + 1))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` floats in [0, 1] → ``(N, 128)`` features."""
        activations = self.trunk(images)
        return torch.cat([activations.mean(dim=(2, 3)), activations.amax(dim=(2, 3))], dim=1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(images)
        return self.presence(features), self.counts(features).view(-1, len(SHAPES), MAX_COUNT + 1)


def to_tensor(images) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` (or a list of such arrays) → float ``(N, 3, H, W)`` in [0, 1]."""
    array = np.stack([np.asarray(image, dtype=np.uint8)[..., :3] for image in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2).float() / 255.0


def labels(scenes) -> tuple[torch.Tensor, torch.Tensor]:
    presence = torch.zeros(len(scenes), len(SHAPES) * len(COLORS))
    counts = torch.zeros(len(scenes), len(SHAPES), dtype=torch.long)
    for row, scene in enumerate(scenes):
        for shape in scene.shapes:
            presence[row, SHAPES.index(shape.kind) * len(COLORS) + COLORS.index(shape.color)] = 1
            counts[row, SHAPES.index(shape.kind)] += 1
    return presence, counts


def train(spec: FeatureNetSpec = FeatureNetSpec()) -> tuple[ShapesFeatureNet, dict]:
    """Train on pocket-shapes train scenes; report exact-match accuracy on 500 test scenes."""
    torch.manual_seed(spec.seed)
    scenes = generate("train", spec.train_scenes, seed=spec.seed, image_size=spec.image_size)
    images = to_tensor([s.render() for s in scenes])
    presence, counts = labels(scenes)
    model = ShapesFeatureNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.learning_rate)
    generator = torch.Generator().manual_seed(spec.seed)
    for _ in range(spec.steps):
        batch = torch.randint(len(scenes), (spec.batch_size,), generator=generator)
        presence_logits, count_logits = model(images[batch])
        loss = (nn.functional.binary_cross_entropy_with_logits(presence_logits, presence[batch])
                + nn.functional.cross_entropy(count_logits.flatten(0, 1), counts[batch].flatten()))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    held_out = generate("test", 500, seed=spec.seed, image_size=spec.image_size)
    with torch.no_grad():
        presence_logits, count_logits = model(to_tensor([s.render() for s in held_out]))
    true_presence, true_counts = labels(held_out)
    report = {"final_train_loss": round(float(loss.detach()), 4),
              "test_presence_label_accuracy": round(float(((presence_logits > 0) == true_presence.bool()).float().mean()), 4),
              "test_presence_exact": round(float(((presence_logits > 0) == true_presence.bool()).all(1).float().mean()), 4),
              "test_count_accuracy": round(float((count_logits.argmax(-1) == true_counts).float().mean()), 4)}
    return model, report


def save(model: ShapesFeatureNet, spec: FeatureNetSpec, report: dict, directory: Path) -> Path:
    """Write weights and config into `directory` atomically (a staging folder, then a rename)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(staging / WEIGHTS))
    digest = hashlib.sha256((staging / WEIGHTS).read_bytes()).hexdigest()
    config = {"name": "pocket-shapes-feature-net", "spec": asdict(spec), "spec_hash": spec.spec_hash(),
              "feature_dim": FEATURE_DIM, "weights_sha256": digest, **report}
    (staging / CONFIG).write_text(json.dumps(config, indent=1) + "\n")
    for path in (staging / WEIGHTS, staging / CONFIG):
        path.chmod(0o644)
    staging.chmod(0o755)  # mkdtemp makes it private
    shutil.rmtree(directory, ignore_errors=True)
    os.replace(staging, directory)
    return directory


def load(directory: str | Path) -> tuple[ShapesFeatureNet, dict]:
    """The network saved in `directory`, after checking its weights' sha256 against its config."""
    from safetensors.torch import load_file

    directory = Path(directory)
    config = json.loads((directory / CONFIG).read_text())
    digest = hashlib.sha256((directory / WEIGHTS).read_bytes()).hexdigest()
    if digest != config["weights_sha256"]:
        raise ValueError(f"{directory / WEIGHTS}: sha256 {digest[:12]} does not match its config")
    model = ShapesFeatureNet()
    model.load_state_dict(load_file(str(directory / WEIGHTS)))
    return model.eval(), config


def cache_directory(spec: FeatureNetSpec = FeatureNetSpec()) -> Path:
    return cache_root() / f"shapes-feature-net-{spec.spec_hash()}"


def default_directory(spec: FeatureNetSpec = FeatureNetSpec()) -> Path:
    """The shipped copy when its spec matches, else the user-cache build (trained when missing)."""
    if (PACKAGED / CONFIG).is_file() and json.loads((PACKAGED / CONFIG).read_text())["spec_hash"] == spec.spec_hash():
        return PACKAGED
    directory = cache_directory(spec)
    if not (directory / CONFIG).is_file():
        model, report = train(spec)
        save(model, spec, report, directory)
    return directory


def resized(image: np.ndarray, size: int) -> np.ndarray:
    """An RGB uint8 image at size × size: as it is, or resized with PIL bicubic on uint8 (the pocket networks'
    one resize rule, for images of another size than they were trained on)."""
    image = np.asarray(image, dtype=np.uint8)[..., :3]
    if image.shape[:2] == (size, size):
        return image
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))


@POCKET_NETWORKS.register("shapes-features", summary="the pocket-shapes CNN's 64-d pooled features, an FID/KID "
                          "feature extractor (called with the network's folder, default: shipped)")
class PocketFeatureExtractor:
    """The pocket-shapes CNN's 64-d pooled features. Images of another size are resized to the
    network's input size with PIL bicubic on uint8 (none when the size already matches)."""

    def __init__(self, directory: str | Path | None = None, batch_size: int = 256):
        self.directory = Path(directory) if directory else default_directory()
        self.model, config = load(self.directory)
        self.input_size = config["spec"]["image_size"]
        self.batch_size = batch_size
        self.identity = {"extractor": "pocket-shapes-feature-net", "weights_sha256": config["weights_sha256"],
                         "feature_dim": config["feature_dim"],
                         "resize": f"none at {self.input_size}x{self.input_size}, else PIL bicubic on uint8"}

    def _resized(self, image: np.ndarray) -> np.ndarray:
        return resized(image, self.input_size)

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        chunks = []
        with torch.no_grad():
            for first in range(0, len(images), self.batch_size):
                batch = to_tensor([self._resized(i) for i in images[first:first + self.batch_size]])
                chunks.append(self.model.features(batch).double().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, self.identity["feature_dim"]))


def _build(_name: None, target: Path) -> dict:
    model, report = train(FeatureNetSpec())
    save(model, FeatureNetSpec(), report, target)
    return report


def main(argv: list[str] | None = None) -> int:
    return builds.command_line(argv, module="distillbench.pocket.shapes_features",
                               description="Train the pocket-shapes feature network (FID/KID features).",
                               build=_build, cache_directory=lambda _name: cache_directory(), packaged=PACKAGED)


if __name__ == "__main__":
    raise SystemExit(main())
