"""Convolutional and MLP building blocks shared by the generative families (DCGAN-style stacks).

Sizes: an image side ``s`` is halved by stride-2 layers while it is even and larger than 4, so 8 -> 4 (one
level), 28 -> 14 -> 7 (two), 32 -> 4 (three) and 64 -> 4 (four). Generators mirror this with fractional-strided
convolutions of kernel 4 and stride 2 (kernel divisible by stride: no checkerboard artefacts).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from trustkit.errors import ShapeMismatchError

NORMS = ("batch", "layer", "none")


def down_levels(size: int) -> int:
    """How many stride-2 halvings an image side ``size`` takes (while even and > 4)."""
    levels = 0
    while size % 2 == 0 and size > 4:
        size //= 2
        levels += 1
    return levels


def base_size(size: int) -> int:
    """The smallest side reached by :func:`down_levels` halvings (7 for 28, 4 for 8/32/64)."""
    return size // 2 ** down_levels(size)


def check_square(shape: Sequence[int], family: str) -> tuple[int, int, int]:
    """``(channels, side, levels)`` of a square image shape; ShapeMismatchError when it does not fit."""
    channels, height, width = shape
    if height != width or down_levels(height) < 1:
        raise ShapeMismatchError(f"{family} builds for square images with an even side >= 8 (8, 28, 32, 64 ...), "
                                 f"got {height}×{width}; use a data set of such images")
    return channels, height, down_levels(height)


def norm_layer(kind: str, channels: int, *, flat: bool = False) -> nn.Module:
    """BatchNorm, layer norm over (C, H, W) (GroupNorm with one group), or nothing."""
    if kind == "batch":
        return nn.BatchNorm1d(channels) if flat else nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.LayerNorm(channels) if flat else nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


def activation(kind: str) -> nn.Module:
    return nn.ReLU() if kind == "relu" else nn.LeakyReLU(0.2)


class Reshape(nn.Module):
    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], *self.shape)


class ConvGenerator(nn.Module):
    """Latent vector -> image logits/pre-activations, DCGAN style.

    Dense (no bias) to ``C0`` maps of the base size -> norm -> act -> one 5×5 stride-1 transposed conv
    (the refinement layer of the lecture's MNIST generator) -> ``levels`` transposed convs 4×4 stride 2,
    halving the channels, norm + act after each but the last. ``C0 = width · 2**levels``: at width 64 on
    28×28 the channels are 256 -> 128 -> 64 -> 1, the lecture's MNIST generator. No output activation: the
    caller applies Tanh (GANs) or treats the output as Bernoulli logits (VAEs). ``last="resize"`` replaces
    the last transposed convolution by nearest-neighbour upsampling ×2 and a 3×3 convolution, which removes
    the periodic (checkerboard) spectral artefact of transposed convolutions (Odena et al. 2016).
    """

    def __init__(self, in_features: int, out_shape: Sequence[int], width: int, *, norm: str = "batch",
                 act: str = "relu", last: str = "transposed") -> None:
        super().__init__()
        channels, side, levels = check_square(out_shape, "a convolutional generator")
        base = base_size(side)
        top = width * 2 ** levels
        layers: list[nn.Module] = [nn.Linear(in_features, top * base * base, bias=False), Reshape(top, base, base),
                                   norm_layer(norm, top), activation(act),
                                   nn.ConvTranspose2d(top, top // 2, 5, 1, 2, bias=False),
                                   norm_layer(norm, top // 2), activation(act)]
        current = top // 2
        if last not in ("transposed", "resize"):
            raise ValueError(f"last must be 'transposed' or 'resize', got {last!r}")
        resize_last = last == "resize"
        for level in range(levels):
            last = level == levels - 1
            out = channels if last else current // 2
            if last and resize_last:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(current, out, 3, 1, 1)]
            else:
                layers.append(nn.ConvTranspose2d(current, out, 4, 2, 1, bias=last))
            if not last:
                layers += [norm_layer(norm, out), activation(act)]
            current = out
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class ConvEncoder(nn.Module):
    """Image -> flat feature vector, DCGAN discriminator style: strided 4×4 convs (no pooling), LeakyReLU 0.2,
    normalisation after every conv but the first (none on the input layer), channels doubling from ``width``.

    ``out_features`` is the length of the returned vector (channels × base side²).
    """

    def __init__(self, in_shape: Sequence[int], width: int, *, norm: str = "batch", act: str = "leaky") -> None:
        super().__init__()
        channels, side, levels = check_square(in_shape, "a convolutional encoder")
        layers: list[nn.Module] = []
        current, out = channels, width
        for level in range(levels):
            layers.append(nn.Conv2d(current, out, 4, 2, 1, bias=level == 0 or norm == "none"))
            if level > 0:
                layers.append(norm_layer(norm, out))
            layers.append(activation(act))
            current, out = out, out * 2
        layers.append(nn.Flatten())
        self.net = nn.Sequential(*layers)
        self.out_features = current * base_size(side) ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def mlp(sizes: Sequence[int], *, act: str = "relu") -> nn.Sequential:
    """Linear layers of ``sizes`` with ``act`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation(act))
    return nn.Sequential(*layers)


def label_planes(labels: torch.Tensor, num_classes: int, side: int) -> torch.Tensor:
    """One-hot labels as ``num_classes`` constant image planes (the conditional-GAN way to tell D the class)."""
    one_hot = nn.functional.one_hot(labels, num_classes).float()
    return one_hot[:, :, None, None].expand(-1, -1, side, side)


def default_width(side: int, table: dict[int, int]) -> int:
    """Pick a width for an image side from ``table`` (side -> width), using the nearest listed side."""
    nearest = min(table, key=lambda s: abs(s - side))
    return table[nearest]
