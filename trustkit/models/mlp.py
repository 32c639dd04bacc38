"""Two hidden layers of 256 ReLU units on the flattened pixels."""
from __future__ import annotations

import math

from torch import nn

HIDDEN = 256


def build(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(in_shape), HIDDEN), nn.ReLU(),
        nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
        nn.Linear(HIDDEN, num_classes),
    )
