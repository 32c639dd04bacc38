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


def _gaussian(config: TrainConfig) -> LossFn:
    """Cohen et al. 2019's training for randomized smoothing: cross-entropy on x + σ·N(0, I) (pixel scale, not
    clipped, fresh noise every step)."""
    import math

    if not (math.isfinite(config.sigma) and config.sigma > 0):
        from trustkit.errors import InvalidArgumentError

        raise InvalidArgumentError(f"Gaussian-noise training needs a noise level sigma > 0 (pixel scale [0, 1]), "
                                   f"got {config.sigma}; e.g. --noise 0.25")

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x + config.sigma * torch.randn_like(x)), y)

    return loss


RECIPES.add("gaussian", _gaussian, summary="cross-entropy on x + sigma*N(0, I): the base model of randomized smoothing")

# recipes that are not adversarial training: no held-out robust-accuracy guard, plain clean validation
NOT_ADVERSARIAL = ("clean", "gaussian")
