"""Multinomial logistic regression: one linear layer on the flattened pixels (Goodfellow et al.'s shallow softmax)."""
from __future__ import annotations

import math

from torch import nn


def build(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(in_shape), num_classes))
