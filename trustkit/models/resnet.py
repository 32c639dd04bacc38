"""CIFAR-style ResNets (3×3 stem, stride 1, no max-pool; adaptive pooling fits 8×8 to 32×32+).

``resnet`` is ResNet-18 (four stages of 64-512 channels, 11 M parameters); ``resnet20`` is He et al.'s
CIFAR ResNet-20 (three stages of 16-64 channels, 0.27 M parameters), cheap enough to train on a CPU.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with an identity (or 1×1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """Stages of BasicBlocks; the first stage keeps the resolution, each later one halves it."""

    def __init__(self, in_channels: int, num_classes: int, blocks: tuple[int, ...] = (2, 2, 2, 2),
                 widths: tuple[int, ...] = (64, 128, 256, 512)) -> None:
        super().__init__()
        width = widths[0]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        stages = []
        for stage, (count, out_channels) in enumerate(zip(blocks, widths)):
            layers = [BasicBlock(width, out_channels, 1 if stage == 0 else 2)]
            layers += [BasicBlock(out_channels, out_channels, 1) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layers))
            width = out_channels
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


def build(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """ResNet-18."""
    return ResNet(in_shape[0], num_classes)


def build_resnet20(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """CIFAR ResNet-20: 3 stages × 3 blocks, 16/32/64 channels."""
    return ResNet(in_shape[0], num_classes, blocks=(3, 3, 3), widths=(16, 32, 64))
