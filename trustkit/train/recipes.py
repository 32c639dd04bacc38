"""Training losses by name. A recipe turns a TrainConfig into ``loss(model, x, y) -> scalar``."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from trustkit.registry import Registry
from trustkit.train.config import TrainConfig

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
RecipeFactory = Callable[[TrainConfig], LossFn]

RECIPES: Registry[RecipeFactory] = Registry("training recipe")


def _clean(config: TrainConfig) -> LossFn:
    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x), y)

    return loss


RECIPES.add("clean", _clean, summary="cross-entropy on unmodified training images")
