"""Pocket ViTs for masked-image-modelling distillation on pocket-shapes (32×32 images, 8×8 patches: 4×4 tokens).

* ``shapes-vit-tiny``: the student architecture (registered for ``arch:shapes-vit-tiny``), transformers'
  `ViTMAEModel` at 64 dims, 4 layers, 4 heads, with a linear head on the mean of its 16 patch tokens. The head
  only gives the network the classifier format; the linear-probe benchmark reads the pooled features.
* the MIM teacher: a `ViTMAEForPreTraining` (96 dims, 4 layers, 4 heads, MAE's pixel loss at 75% masking, 1,500 steps)
  trained on pocket-shapes train scenes, built deterministically into the user cache and saved with
  safetensors (``save_pretrained``); ``DISTILLBENCH_ZOO_SCALE=tiny`` trains a few steps only (tests);
* the supervised teacher: the pocket FID feature network (`shapes_features`), whose last 8×8×64 map,
  average-pooled 2×2, lines up with the ViT's 4×4 patch grid (Hybrid Distill's "supervised/CL teacher"
  slot; DMJD's distillation target).

`encode` runs a `ViTMAEModel` on chosen patches (MAE style: masked patches are dropped, not replaced), so
masks, attention maps and token features are under the methods' control.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from distillbench.kinds.image_classifier.classifiers import register_architecture
from distillbench.core.files import replace_directory, temporary_name

# 8×8 patches: 4×4 patches made every ViT step ~4× dearer (64 tokens), too slow for shared CPUs.
IMAGE_SIZE, PATCH_SIZE = 32, 8
GRID = IMAGE_SIZE // PATCH_SIZE
NUM_PATCHES = GRID * GRID
# pocket-shapes images are normalised with these (shapes_classifiers._dataset); the feature network
# was trained on raw [0, 1] pixels, so its input is un-normalised.
POCKET_MEAN, POCKET_STD = 0.5, 0.25
SIZES = {"tiny": dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128),
         "teacher": dict(hidden_size=96, num_hidden_layers=4, num_attention_heads=4, intermediate_size=192)}


def vit_config(size: str, mask_ratio: float = 0.75):
    from transformers import ViTMAEConfig

    config = ViTMAEConfig(image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, num_channels=3, hidden_dropout_prob=0.0,
                          attention_probs_dropout_prob=0.0, decoder_hidden_size=64, decoder_num_hidden_layers=1,
                          decoder_num_attention_heads=4, decoder_intermediate_size=128, mask_ratio=mask_ratio,
                          norm_pix_loss=True, **SIZES[size])
    config._attn_implementation = "eager"  # attention maps are returned by the eager kernel only
    return config


def encode(vit, images: torch.Tensor, keep: torch.Tensor | None = None, attentions: bool = False
           ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(tokens [B, 1 + K, D] after the final layer norm, [CLS] first; per-layer attention maps
    [B, heads, 1 + K, 1 + K] when asked) of a `ViTMAEModel` run on the patches `keep` [B, K] (all when None)."""
    embeddings = vit.embeddings
    positions = embeddings.position_embeddings
    patches = embeddings.patch_embeddings(images) + positions[:, 1:]
    if keep is not None:
        patches = patches.gather(1, keep.unsqueeze(-1).expand(-1, -1, patches.shape[-1]))
    cls = (embeddings.cls_token + positions[:, :1]).expand(len(patches), -1, -1)
    hidden = torch.cat([cls, patches], dim=1)
    maps: list[torch.Tensor] = []
    hooks = [layer.attention.register_forward_hook(lambda module, args, output: maps.append(output[1]))
             for layer in vit.layers] if attentions else []
    try:
        for layer in vit.layers:
            hidden = layer(hidden, None)
    finally:
        for hook in hooks:
            hook.remove()
    return vit.layernorm(hidden), maps


class PocketViT(nn.Module):
    """A `ViTMAEModel` encoder and a linear head on the mean of its patch tokens."""

    def __init__(self, num_classes: int, size: str = "tiny"):
        super().__init__()
        from transformers import ViTMAEModel

        self.vit = ViTMAEModel(vit_config(size))
        self.head = nn.Linear(self.vit.config.hidden_size, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens, _ = encode(self.vit, images)
        return self.head(tokens[:, 1:].mean(1))


register_architecture("shapes-vit-tiny", head="head", summary="pocket-shapes ViT student (transformers ViTMAE "
                      "encoder, 64-d, 4 layers, 4 heads, 4×4 patches) for masked-image-modelling distillation")(
    lambda num_classes: PocketViT(num_classes, "tiny"))


def patchify(images: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] → [B, patches, PATCH_SIZE² · 3], patches in row-major order (as ViTMAE's)."""
    batch, channels = images.shape[:2]
    grid = images.unfold(2, PATCH_SIZE, PATCH_SIZE).unfold(3, PATCH_SIZE, PATCH_SIZE)  # B C gh gw p p
    return grid.permute(0, 2, 3, 4, 5, 1).reshape(batch, -1, PATCH_SIZE * PATCH_SIZE * channels)


class FeatureMapTeacher(nn.Module):
    """The pocket feature network's last map as one 64-d feature per ViT patch: [B, 16 patches, 64]."""

    def __init__(self):
        super().__init__()
        from distillbench.pocket.shapes_features import default_directory, load

        self.network, _ = load(default_directory())

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

    from distillbench.kinds.image_classifier.images import load_image_dataset

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
    from distillbench.pocket.zoo import cache_root

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


def load_mae_teacher(spec: MaeTeacherSpec | None = None):
    """The MIM teacher's encoder (a `ViTMAEModel`), frozen, in eval mode."""
    from transformers import ViTMAEForPreTraining

    model = ViTMAEForPreTraining.from_pretrained(mae_teacher_directory(spec), attn_implementation="eager")
    return model.vit.eval().requires_grad_(False)
