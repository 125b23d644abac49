"""Small ViTs for masked-image-modelling distillation on 32×32 images (8×8 patches: 4×4 tokens).

* ``shapes-vit-tiny``: the student architecture (registered for ``arch:shapes-vit-tiny``), transformers'
  `ViTMAEModel` at 64 dims, 4 layers, 4 heads, with a linear head on the mean of its 16 patch tokens. The head
  only gives the network the classifier format; the linear-probe benchmark reads the pooled features.
* ``teacher`` size: the pocket MIM teacher's encoder (96 dims), trained by `distillbench.pocket.shapes_vit`.

`encode` runs a `ViTMAEModel` on chosen patches (MAE style: masked patches are dropped, not replaced), so
masks, attention maps and token features are under the methods' control.
"""

from __future__ import annotations

import torch
from torch import nn

from distillbench.kinds.image_classifier.classifiers import register_architecture

# 8×8 patches: 4×4 patches made every ViT step ~4× dearer (64 tokens), too slow for shared CPUs.
IMAGE_SIZE, PATCH_SIZE = 32, 8
GRID = IMAGE_SIZE // PATCH_SIZE
NUM_PATCHES = GRID * GRID
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
                      "encoder, 64-d, 4 layers, 4 heads, 4×4 patches) for masked-image-modelling distillation",
                      size="tiny")(PocketViT)


def patchify(images: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] → [B, patches, PATCH_SIZE² · 3], patches in row-major order (as ViTMAE's)."""
    batch, channels = images.shape[:2]
    grid = images.unfold(2, PATCH_SIZE, PATCH_SIZE).unfold(3, PATCH_SIZE, PATCH_SIZE)  # B C gh gw p p
    return grid.permute(0, 2, 3, 4, 5, 1).reshape(batch, -1, PATCH_SIZE * PATCH_SIZE * channels)
