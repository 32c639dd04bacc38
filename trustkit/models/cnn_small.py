"""The fast-adversarial-training MNIST network: two stride-2 convolutions and a 100-unit layer.

conv16 (4×4, stride 2) - conv32 (4×4, stride 2) - fc100 - fc; 166,406 parameters on MNIST. It is the model of
Wong & Kolter (2018) that Wong et al. (2020, "Fast is better than free") adversarially train on MNIST, so
their published numbers (98.5% clean, 88.77% PGD-50×10 at eps 0.3 after FGSM-RS) are comparable with it.
Strided convolutions instead of max-pooling also make it about three times cheaper per step than ``cnn``.
"""
from __future__ import annotations

from torch import nn

from trustkit.errors import ShapeMismatchError


def build(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    channels, height, width = in_shape
    if height < 4 or width < 4:
        raise ShapeMismatchError(f"cnn-small needs images of at least 4×4, got {height}×{width}; pick another "
                                 "model or resize the images (--image-size)")
    # A 4×4 kernel with stride 2 and padding 1 halves each side (rounding down).
    return nn.Sequential(
        nn.Conv2d(channels, 16, 4, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * (height // 2 // 2) * (width // 2 // 2), 100), nn.ReLU(),
        nn.Linear(100, num_classes),
    )
