"""DMJD — Disjoint Masking with Joint Distillation (Ma, Liu, Xie, Ye, Deng & Ji, "Disjoint Masking with Joint
Distillation for Efficient Masked Image Modeling", arXiv:2301.00230).

Disjoint masking (DM): each image is seen in two masked views of the same masking rate r, the second masking
min(p − r, r)·L of the first view's visible patches (p the prediction ratio) and the rest of its masked
patches among the first view's masked ones, so the views together predict a share p of the patches (all of
them at the defaults r = 0.6, p = 1). Joint distillation (JD): a dual-branch head predicts the target of the
masked patches (a decoder with mask tokens) and of the visible ones (an MLP on the encoder's tokens):

L = (1/|M|) Σ_{(v,i)∈M} ‖ŷ^mask_{v,i} − y_i‖²/D + θ · mean_{(v,i)∉M} SmoothL1_{β=2}(ŷ^vis_{v,i}, y_i)

over both views v. Defaults follow the release (mx-mark/DMJD ``models_dmjd.py`` ``random_masking`` /
``forward_loss``, ``PRETRAIN.md``: mask ratio 0.6, pred_ratio 1, L2 masked loss, smooth-L1 (β = 2) visible loss,
θ = 1). The release's target y is whitened HOG and its masks are SimMIM blocks on a 14×14 grid; here the
target is the pocket supervised teacher's per-patch features (``target: teacher``, the distillation the
method's name promises; layer-normalised per patch like the release's whitening) or normalised pixels
(``target: pixels``, disjoint-masking MIM with no teacher: the baseline), and masks are per-patch random
(the ``rand`` mask type: blocks of 2×2 patches mean little on a 4×4 grid). The saved student is the ViT alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from annotated_types import Ge, Gt, Le, Lt
from torch import nn
from torch.nn import functional as F

from distillbench.core.registry import POCKET_NETWORKS
from distillbench.kinds.image_classifier.vit import NUM_PATCHES, PATCH_SIZE, encode, patchify
from distillbench.methods.base import register_method
from distillbench.methods.classify.common import ClassifyMethod
from distillbench.methods.classify.masked_image import FrozenTeachers, WithTeachers, student_vit, whitened


def disjoint_masks(batch_size: int, num_patches: int, mask_ratio: float, pred_ratio: float = 1.0
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(keep [2, B, K] visible patch indices in ascending order, masked [2, B, L] bool) of the two views,
    drawn with the global RNG."""
    keep_count = int(num_patches * (1 - mask_ratio))
    mask_count = num_patches - keep_count
    extra = min(int(min(pred_ratio - mask_ratio, mask_ratio) * num_patches), keep_count, mask_count)
    order = torch.rand(batch_size, num_patches).argsort(dim=1)
    visible, masked = order[:, :keep_count], order[:, keep_count:]
    visible = visible.gather(1, torch.rand(batch_size, keep_count).argsort(dim=1))
    masked = masked.gather(1, torch.rand(batch_size, mask_count).argsort(dim=1))
    # The second view hides `extra` of the first view's visible patches, and keeps as many of its masked ones.
    second_keep = torch.cat([visible[:, extra:], masked[:, mask_count - extra:]], dim=1)
    keep = torch.stack([visible, second_keep]).sort(dim=2).values
    is_masked = torch.ones(2, batch_size, num_patches, dtype=torch.bool)
    is_masked.scatter_(2, keep, False)
    return keep, is_masked


def dmjd_loss(masked_predictions: torch.Tensor, visible_predictions: torch.Tensor, targets: torch.Tensor,
              masked: torch.Tensor, keep: torch.Tensor, theta: float = 1.0, smooth_l1_beta: float = 2.0
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked-branch loss, θ · visible-branch loss). Views stacked into the batch (N = views × B):
    masked_predictions [N, L, D] (every patch, scored on the masked ones), visible_predictions [N, K, D] for
    the patches `keep` [N, K], targets [N, L, D], masked [N, L] bool."""
    per_patch = ((masked_predictions.float() - targets.float()) ** 2).mean(-1)
    weights = masked.float()
    masked_loss = (per_patch * weights).sum() / weights.sum()
    visible_targets = targets.float().gather(1, keep.unsqueeze(-1).expand(-1, -1, targets.shape[-1]))
    visible_loss = F.smooth_l1_loss(visible_predictions.float(), visible_targets, beta=smooth_l1_beta)
    return masked_loss, theta * visible_loss


def visible_branch(in_dim: int, width: int, target_dim: int) -> nn.Module:
    """The release's visible-distillation branch: a 3-layer MLP projector (LN, GELU) and a linear predictor."""
    return nn.Sequential(nn.Linear(in_dim, width), nn.LayerNorm(width), nn.GELU(),
                         nn.Linear(width, width), nn.LayerNorm(width), nn.GELU(),
                         nn.Linear(width, width), nn.LayerNorm(width, elementwise_affine=False),
                         nn.Linear(width, target_dim))


@register_method("dmjd", family="classify", paper="Ma et al. 2023, arXiv:2301.00230",
                 summary="ViT student: two disjointly masked views per image; a decoder predicts the masked "
                         "patches' targets and an MLP the visible ones'")
@dataclass
class DMJD(ClassifyMethod):
    """Disjoint masked views with a masked-prediction branch and a visible-distillation branch."""

    mask_ratio: Annotated[float, Gt(0), Lt(1)] = 0.6
    pred_ratio: Annotated[float, Gt(0), Le(1)] = 1.0  # share of patches the two views predict together
    theta: Annotated[float, Ge(0)] = 1.0  # weight of the visible branch
    smooth_l1_beta: Annotated[float, Gt(0)] = 2.0
    target: Literal["teacher", "pixels"] = "teacher"

    def check(self):
        return [] if self.pred_ratio >= self.mask_ratio else ["pred_ratio: must be at least mask_ratio"]

    def training_module(self, student):
        from transformers.models.vit_mae.modeling_vit_mae import ViTMAEDecoder

        config = student_vit(student).config
        teachers = (FrozenTeachers(features=POCKET_NETWORKS.get("shapes-feature-map")()) if self.target == "teacher"
                    else FrozenTeachers())
        target_dim = teachers.features.dim if self.target == "teacher" else PATCH_SIZE**2 * config.num_channels
        decoder = ViTMAEDecoder(config, NUM_PATCHES)
        decoder.decoder_pred = nn.Linear(config.decoder_hidden_size, target_dim)
        visible = visible_branch(config.hidden_size, config.decoder_hidden_size, target_dim)
        return WithTeachers(student, {"decoder": decoder, "visible": visible}, teachers)

    def trained_model(self, module):
        return module.student

    def targets(self, module, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return whitened(module.teachers.features(images) if self.target == "teacher" else patchify(images))

    def loss(self, student, batch):
        images = batch["images"]
        keep, masked = disjoint_masks(len(images), NUM_PATCHES, self.mask_ratio, self.pred_ratio)
        keep, masked = keep.flatten(0, 1).to(images.device), masked.flatten(0, 1).to(images.device)
        both_views = torch.cat([images, images])
        tokens, _ = encode(student_vit(student.student), both_views, keep)
        hidden = torch.cat([keep, torch.nonzero(masked)[:, 1].view(len(keep), -1)], dim=1)  # visible, then masked
        restore = hidden.argsort(dim=1)
        masked_predictions = student.parts["decoder"](tokens, restore).logits
        visible_predictions = student.parts["visible"](tokens[:, 1:])
        targets = self.targets(student, images).repeat(2, 1, 1)
        masked_loss, visible_loss = dmjd_loss(masked_predictions, visible_predictions, targets, masked, keep,
                                              self.theta, self.smooth_l1_beta)
        return {"masked": masked_loss, "visible": visible_loss}
