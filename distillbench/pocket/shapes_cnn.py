"""The pocket-shapes classifier architectures: ``shapes-cnn`` (teachers) and ``shapes-cnn-small`` (students).

Kept apart from `shapes_classifiers` so that running that module as a script does not register them twice.
"""

from __future__ import annotations

import torch
from torch import nn

from distillbench.kinds.image_classifier.classifiers import register_architecture


class ShapesCNN(nn.Module):
    """Stages of 3×3 conv-BN-ReLU layers with 2×2 max pools between them; the last map's spatial mean
    and max, concatenated, feed a linear head (`fc`)."""

    def __init__(self, stages: tuple[tuple[int, ...], ...], num_classes: int):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for index, widths in enumerate(stages):
            if index:
                layers.append(nn.MaxPool2d(2))
            for width in widths:
                layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
                channels = width
        self.trunk = nn.Sequential(*layers)
        self.fc = nn.Linear(2 * channels, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps = self.trunk(images)
        return self.fc(torch.cat([maps.mean(dim=(2, 3)), maps.amax(dim=(2, 3))], dim=1))


# At 32×32: about 5.2M multiply-adds and 37k parameters (30 classes), against 0.8M and 8k.
TEACHER_STAGES = ((16,), (32, 32), (64,))
STUDENT_STAGES = ((8,), (16,), (32,))
register_architecture("shapes-cnn", head="fc", summary="pocket-shapes teacher CNN: 16 | 32, 32 | 64 channels",
                      stages=TEACHER_STAGES)(ShapesCNN)
register_architecture("shapes-cnn-small", head="fc", summary="pocket-shapes student CNN: 8 | 16 | 32 channels",
                      stages=STUDENT_STAGES)(ShapesCNN)
