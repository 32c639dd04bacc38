"""The discriminator of the CIFAR-10 GAN lab (ACGAN + WGAN-GP): eight 3×3 convolutions of 196 channels.

conv1..conv8 (strides 1, 2, 1, 2, 1, 1, 1, 2; padding 1, so a 32×32 image shrinks 32 -> 16 -> 8 -> 4), each
followed by layer norm and LeakyReLU, then a 4×4 max-pool to one 196-vector and two heads: ``fc1`` (one
real/fake or critic score) and ``fc10`` (class logits). The lab's first step trains the same network alone as a
CIFAR-10 classifier (fc10 only); :func:`build` returns that form for the model zoo (2,432,174 parameters on
CIFAR-10, 2,428,646 on MNIST).

Layer norm. The lab writes ``nn.LayerNorm([196, h, w])``: statistics over (C, H, W) per image, and a learnt
scale and shift per (channel, row, column), 708,736 affine parameters in all. The default here, ``norm="group"``,
is ``nn.GroupNorm(1, 196)``: the same per-image statistics over (C, H, W), but one scale and shift per channel
(3,136 parameters, as batch norm has), so it does not tie the network to one image size (MNIST's 28×28 works too)
and it is what trustkit's other WGAN-GP critic uses. Either keeps each image's score independent of the rest of
the batch, which the gradient penalty needs (batch norm would not). ``norm="layer"`` builds the lab's literal form.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from trustkit.errors import InvalidArgumentError, ShapeMismatchError

CHANNELS = 196
STRIDES = (1, 2, 1, 2, 1, 1, 1, 2)
POOL = 4  # the last feature map must be exactly POOL×POOL: the max-pool turns it into one 196-vector
NORMS = ("group", "layer")
# A 3×3, padding-1, stride-2 convolution maps a side s to ceil(s / 2); three of them take 25..32 to 4.
MIN_SIDE, MAX_SIDE = 25, 32


def _after(side: int, stride: int) -> int:
    """Side (pixels) after a 3×3 convolution with padding 1 and ``stride``."""
    return (side + 2 - 3) // stride + 1


def check_shape(in_shape: tuple[int, int, int], name: str = "disc196") -> tuple[int, int, int]:
    """``in_shape`` (C, H, W) if the eight convolutions end at 4×4; otherwise a one-line ShapeMismatchError."""
    channels, height, width = in_shape
    if not (MIN_SIDE <= height <= MAX_SIDE and MIN_SIDE <= width <= MAX_SIDE) or channels < 1:
        raise ShapeMismatchError(
            f"{name} needs images of {MIN_SIDE} to {MAX_SIDE} pixels a side (CIFAR-10 32×32, MNIST 28×28), so that "
            f"its three stride-2 layers end at {POOL}×{POOL} for the {POOL}×{POOL} max-pool; got "
            f"{channels}×{height}×{width}; use cifar10 or mnist, another zoo model, or resize folder: images with "
            "--image-size 32")
    return channels, height, width


class Disc196Trunk(nn.Sequential):
    """The eight conv-norm-LeakyReLU layers (``conv1`` .. ``conv8``, the lab's names) and the 4×4 max-pool:
    images N×C×H×W -> features N×196.

    ``negative_slope`` is LeakyReLU's slope for negative inputs (0.2, the DCGAN value trustkit's other
    discriminators use; the lab says only "LeakyReLU").
    """

    def __init__(self, in_shape: tuple[int, int, int], *, norm: str = "group", negative_slope: float = 0.2) -> None:
        channels, height, width = check_shape(in_shape)
        if norm not in NORMS:
            raise InvalidArgumentError(f"disc196 norm must be one of {', '.join(NORMS)}, got '{norm}'")
        layers: dict[str, nn.Module] = {}
        for index, stride in enumerate(STRIDES, start=1):
            height, width = _after(height, stride), _after(width, stride)
            conv = nn.Conv2d(channels if index == 1 else CHANNELS, CHANNELS, 3, stride=stride, padding=1)
            normalise = nn.GroupNorm(1, CHANNELS) if norm == "group" else nn.LayerNorm([CHANNELS, height, width])
            layers[f"conv{index}"] = nn.Sequential(conv, normalise, nn.LeakyReLU(negative_slope))
        assert (height, width) == (POOL, POOL), (height, width)  # check_shape guarantees it
        super().__init__(OrderedDict([*layers.items(), ("pool", nn.MaxPool2d(POOL, POOL)), ("flatten", nn.Flatten())]))
        self.out_features = CHANNELS


class Disc196(nn.Module):
    """The lab's GAN discriminator: trunk + ``fc1`` (one score per image) + ``fc10`` (``num_classes`` logits).

    ``forward`` returns ``(scores (N,), class logits N×K)``; inputs are images in whatever range the caller
    trains it on ([-1, 1] inside the GANs). No sigmoid: fc1 is a logit (ACGAN) or a critic value (WGAN-GP).
    """

    def __init__(self, in_shape: tuple[int, int, int], num_classes: int, *, norm: str = "group",
                 negative_slope: float = 0.2) -> None:
        super().__init__()
        self.trunk = Disc196Trunk(in_shape, norm=norm, negative_slope=negative_slope)
        self.fc1 = nn.Linear(CHANNELS, 1)
        self.fc10 = nn.Linear(CHANNELS, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.trunk(x)
        return self.fc1(features).squeeze(1), self.fc10(features)


class Disc196Critic(nn.Module):
    """Trunk + ``fc1`` only: the WGAN-GP critic, scores (N,) (an unused class head would be dead weight)."""

    def __init__(self, in_shape: tuple[int, int, int], *, norm: str = "group", negative_slope: float = 0.2) -> None:
        super().__init__()
        self.trunk = Disc196Trunk(in_shape, norm=norm, negative_slope=negative_slope)
        self.fc1 = nn.Linear(CHANNELS, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc1(self.trunk(x)).squeeze(1)


class Disc196Classifier(nn.Module):
    """Trunk + ``fc10`` only: the lab's first step, the discriminator trained alone as a classifier (logits N×K).

    Without fc1, so that every parameter gets a gradient (DistributedDataParallel refuses unused ones).
    """

    def __init__(self, in_shape: tuple[int, int, int], num_classes: int, *, norm: str = "group",
                 negative_slope: float = 0.2) -> None:
        super().__init__()
        self.trunk = Disc196Trunk(in_shape, norm=norm, negative_slope=negative_slope)
        self.fc10 = nn.Linear(CHANNELS, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc10(self.trunk(x))


def build(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """The zoo form: :class:`Disc196Classifier` for images ``in_shape`` (C, H, W; sides 25-32 px)."""
    return Disc196Classifier(in_shape, num_classes)
