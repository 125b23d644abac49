"""The CIFAR architectures of the CRD benchmark (Tian et al. 2020, arXiv:1910.10699; RepDistiller's
``models/resnet.py`` and ``models/wrn.py``), written here with the same module and parameter names, so
RepDistiller's and mdistiller's released teacher checkpoints load into them unchanged
(`distillbench.kinds.image_classifier.classifiers.convert_checkpoint`).

* ResNet for CIFAR (He et al. 2016): a 3×3 stem, three stages of basic blocks (strides 1, 2, 2),
  global average pooling, a linear head. ``resnet<depth>`` has (depth − 2)/6 blocks per stage with
  16/16/32/64 channels; ``resnet8x4`` and ``resnet32x4`` have 32/64/128/256.
* Wide ResNet (Zagoruyko & Komodakis 2016): pre-activation blocks, ``wrn_<depth>_<k>`` with (depth − 4)/6
  blocks per stage and 16k/32k/64k channels, a final BN-ReLU, average pooling, a linear head.

Initialisation follows the originals: Kaiming normal (fan-out) convolutions and unit BN for ResNet;
N(0, 2/n) convolutions, unit BN and zero linear bias for WRN. Parameter counts (100 classes) are
checked in the tests against the CRD paper's: resnet8x4 1.23M, resnet32x4 7.43M, wrn_16_2 0.70M,
wrn_40_2 2.26M.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from distillbench.kinds.image_classifier.classifiers import register_architecture


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus the (projected) input, then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(out + residual)


class CifarResNet(nn.Module):
    def __init__(self, depth: int, widths: tuple[int, int, int, int], num_classes: int = 100):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        in_planes = widths[0]
        stages = []
        for planes, stride in zip(widths[1:], (1, 2, 2)):
            layers = []
            for index in range(blocks):
                layers.append(BasicBlock(in_planes, planes, stride if index == 0 else 1))
                in_planes = planes
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(widths[3], num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class WideBlock(nn.Module):
    """Pre-activation block: BN-ReLU-conv-BN-ReLU-conv plus the input (projected when the width changes)."""

    def __init__(self, in_planes: int, out_planes: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.equal_in_out = in_planes == out_planes
        self.convShortcut = None if self.equal_in_out else nn.Conv2d(in_planes, out_planes, kernel_size=1,
                                                                      stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = F.relu(self.bn1(x))
        out = self.conv1(activated)  # as in the original, a projected block convolves the activated input
        out = self.conv2(F.relu(self.bn2(out)))
        shortcut = x if self.equal_in_out else self.convShortcut(activated)
        return shortcut + out


class NetworkBlock(nn.Module):
    def __init__(self, blocks: int, in_planes: int, out_planes: int, stride: int):
        super().__init__()
        self.layer = nn.Sequential(*(WideBlock(in_planes if i == 0 else out_planes, out_planes,
                                               stride if i == 0 else 1) for i in range(blocks)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth: int, widen_factor: int, num_classes: int = 100):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        blocks = (depth - 4) // 6
        channels = (16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.conv1 = nn.Conv2d(3, channels[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(blocks, channels[0], channels[1], 1)
        self.block2 = NetworkBlock(blocks, channels[1], channels[2], 2)
        self.block3 = NetworkBlock(blocks, channels[2], channels[3], 2)
        self.bn1 = nn.BatchNorm2d(channels[3])
        self.fc = nn.Linear(channels[3], num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                module.weight.data.normal_(0, math.sqrt(2.0 / fan_out))
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.data.fill_(1)
                module.bias.data.zero_()
            elif isinstance(module, nn.Linear):
                module.bias.data.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.relu(self.bn1(out))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


def _resnet(name: str, depth: int, widths: tuple[int, int, int, int]) -> None:
    register_architecture(name, head="fc", paper="He et al. 2016, arXiv:1512.03385 (CIFAR variant, CRD repo)",
                          summary=f"CIFAR ResNet, depth {depth}, widths {'/'.join(map(str, widths[1:]))}",
                          depth=depth, widths=widths)(CifarResNet)


def _wrn(depth: int, widen_factor: int) -> None:
    register_architecture(f"wrn_{depth}_{widen_factor}", head="fc",
                          paper="Zagoruyko & Komodakis 2016, arXiv:1605.07146 (CRD repo)",
                          summary=f"Wide ResNet, depth {depth}, widen factor {widen_factor}",
                          depth=depth, widen_factor=widen_factor)(WideResNet)


for _depth in (8, 14, 20, 32, 44, 56, 110):
    _resnet(f"resnet{_depth}", _depth, (16, 16, 32, 64))
_resnet("resnet8x4", 8, (32, 64, 128, 256))
_resnet("resnet32x4", 32, (32, 64, 128, 256))
for _depth, _k in ((16, 1), (16, 2), (40, 1), (40, 2)):
    _wrn(_depth, _k)
