"""Query accounting for black-box attacks: a model wrapper that counts every image it is asked about.

One *query* is one image (one input row) passed through the model, whatever the batch it sits in; an attack
that asks about 64 perturbed copies of an image has spent 64 queries on it.
"""
from __future__ import annotations

import torch
from torch import nn


class QueryCounter(nn.Module):
    """Forwards to ``model`` and adds the number of input rows of every call to ``rows``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += int(x.shape[0])
        return self.model(x)
