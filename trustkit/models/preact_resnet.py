"""Pre-activation ResNet-18 (He et al. 2016b), the model of the fast adversarial training benchmarks
(Wong et al. 2020; Rice et al. 2020): BN-ReLU before each convolution, 64-512 channels, 11 M parameters."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PreActBlock(nn.Module):
    """BN-ReLU-conv3×3 twice; the shortcut (1×1 conv when the shape changes) starts after the first BN-ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        layers, width = [], 64
        for stage, out_channels in enumerate((64, 128, 256, 512)):
            layers += [PreActBlock(width, out_channels, 1 if stage == 0 else 2), PreActBlock(out_channels, out_channels, 1)]
            width = out_channels
        self.blocks = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.blocks(self.stem(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def build(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    return PreActResNet18(in_shape[0], num_classes)
