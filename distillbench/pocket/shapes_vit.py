"""The pocket teachers of masked-image-modelling distillation on pocket-shapes; the ViT student
(``arch:shapes-vit-tiny``) is the image-classifier kind's (`distillbench.kinds.image_classifier.vit`).

* the MIM teacher: a `ViTMAEForPreTraining` (96 dims, 4 layers, 4 heads, MAE's pixel loss at 75% masking, 1,500 steps)
  trained on pocket-shapes train scenes, built deterministically into the user cache and saved with
  safetensors (``save_pretrained``); ``DISTILLBENCH_ZOO_SCALE=tiny`` trains a few steps only (tests);
* the supervised teacher: the pocket FID feature network (`shapes_features`), whose last 8×8×64 map,
  average-pooled 2×2, lines up with the ViT's 4×4 patch grid (Hybrid Distill's "supervised/CL teacher"
  slot; DMJD's distillation target).

The methods load both through `POCKET_NETWORKS` (``shapes-vit-mae`` and ``shapes-feature-map``), so they
never import this module.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from distillbench.core.files import replace_directory, temporary_name
from distillbench.core.registry import POCKET_NETWORKS
from distillbench.kinds.image_classifier.images import load_image_dataset
from distillbench.kinds.image_classifier.vit import GRID, vit_config
from distillbench.pocket import shapes_features
from distillbench.pocket.zoo import cache_root

# pocket-shapes images are normalised with these (shapes_classifiers._dataset); the feature network
# was trained on raw [0, 1] pixels, so its input is un-normalised.
POCKET_MEAN, POCKET_STD = 0.5, 0.25


@POCKET_NETWORKS.register("shapes-feature-map", summary="the pocket feature network's last map pooled to the "
                          "ViT's 4×4 patch grid: [B, 16, 64] (the supervised teacher of hybrid-distill and dmjd)")
class FeatureMapTeacher(nn.Module):
    """The pocket feature network's last map as one 64-d feature per ViT patch: [B, 16 patches, 64]."""

    def __init__(self):
        super().__init__()
        self.network, _ = shapes_features.load(shapes_features.default_directory())

    @property
    def dim(self) -> int:
        return self.network.trunk[-2].out_channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps = self.network.trunk(images * POCKET_STD + POCKET_MEAN)  # [B, 64, 8, 8]
        maps = nn.functional.adaptive_avg_pool2d(maps, GRID)  # one cell per patch, row-major like the ViT's
        return maps.flatten(2).transpose(1, 2)


# --- the MIM teacher ---------------------------------------------------------------------------
@dataclass(frozen=True)
class MaeTeacherSpec:
    train_scenes: int = 4000
    steps: int = 1500
    batch_size: int = 64
    learning_rate: float = 1.5e-3
    weight_decay: float = 0.05
    seed: int = 0
    size: str = "teacher"
    version: int = 1  # bump when the training procedure changes

    def spec_hash(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


TINY_MAE_SPEC = MaeTeacherSpec(train_scenes=256, steps=40, batch_size=32)


def mae_spec() -> MaeTeacherSpec:
    return TINY_MAE_SPEC if os.environ.get("DISTILLBENCH_ZOO_SCALE") == "tiny" else MaeTeacherSpec()


def train_mae_teacher(spec: MaeTeacherSpec):
    """MAE pre-training (pixel loss on masked patches, per-patch normalised targets) on pocket-shapes,
    a function of the spec alone: the global RNG is forked, so callers' random streams are untouched."""
    from transformers import ViTMAEForPreTraining

    data = load_image_dataset("pocket:shapes-many", "train", spec.train_scenes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = ViTMAEForPreTraining(vit_config(spec.size))
        optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, betas=(0.9, 0.95),
                                      weight_decay=spec.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, spec.learning_rate, total_steps=spec.steps,
                                                       pct_start=0.05)
        generator = torch.Generator().manual_seed(spec.seed)
        model.train()
        for _ in range(spec.steps):
            batch = torch.randint(len(data), (spec.batch_size,), generator=generator).tolist()
            loss = model(pixel_values=data.batch(batch, "flip", generator)).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval(), {"final_loss": round(float(loss.detach()), 4)}


def mae_teacher_directory(spec: MaeTeacherSpec | None = None) -> Path:
    """The cached MIM teacher of `spec` (default: by DISTILLBENCH_ZOO_SCALE), trained when missing."""
    spec = spec or mae_spec()
    directory = cache_root() / f"shapes-vit-mae-{spec.spec_hash()}"
    if not (directory / "teacher.json").is_file():
        model, report = train_mae_teacher(spec)
        staging = temporary_name(directory)
        model.save_pretrained(staging, safe_serialization=True)
        (staging / "teacher.json").write_text(json.dumps({"spec": asdict(spec), "spec_hash": spec.spec_hash(),
                                                          **report}, indent=1) + "\n")
        replace_directory(staging, directory)
    return directory


@POCKET_NETWORKS.register("shapes-vit-mae", summary="the pocket MIM teacher's encoder (ViTMAE, 96-d), frozen: the "
                          "relation teacher of hybrid-distill")
def load_mae_teacher(spec: MaeTeacherSpec | None = None):
    """The MIM teacher's encoder (a `ViTMAEModel`), frozen, in eval mode."""
    from transformers import ViTMAEForPreTraining

    model = ViTMAEForPreTraining.from_pretrained(mae_teacher_directory(spec), attn_implementation="eager")
    return model.vit.eval().requires_grad_(False)
