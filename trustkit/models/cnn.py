"""Small convnet: conv32-pool-conv64-pool-fc128 (421,642 parameters on MNIST, the usual fast-AT model size)."""
from __future__ import annotations

from torch import nn

from trustkit.errors import ShapeMismatchError


def build(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    channels, height, width = in_shape
    if height % 4 or width % 4:
        raise ShapeMismatchError(f"cnn needs height and width divisible by 4, got {height}×{width}; resize the "
                                 "images (--image-size 32, say) or pick another model")
    return nn.Sequential(
        nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * (height // 4) * (width // 4), 128), nn.ReLU(),
        nn.Linear(128, num_classes),
    )
