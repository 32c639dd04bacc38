"""The detector contract: fit on real (label 0) and fake (label 1) images, score images as P(fake)."""
from __future__ import annotations

import abc
from typing import Any

import numpy as np
import torch

REAL, FAKE = 0, 1


class Detector(abc.ABC):
    """Scores N×C×H×W images (uint8, or float in [0, 1]) with the probability that each is generated.

    ``differentiable`` detectors expose ``module``: an ``nn.Module`` on [0, 1] images returning two logits
    (real, fake), which evasion attacks differentiate.
    """

    name = "detector"
    differentiable = False

    @abc.abstractmethod
    def fit(self, x: torch.Tensor, y: torch.Tensor, *, seed: int = 0, device: torch.device | None = None) -> None:
        """Train on images ``x`` with labels ``y`` (0 real, 1 fake)."""

    @abc.abstractmethod
    def score(self, x: torch.Tensor, *, device: torch.device | None = None) -> np.ndarray:
        """P(fake) per image, float64 in [0, 1]."""

    @abc.abstractmethod
    def state(self) -> dict[str, torch.Tensor]:
        """Everything needed to rebuild the fitted detector, as named tensors (stored as safetensors)."""

    @abc.abstractmethod
    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore a fitted detector from :meth:`state`'s tensors."""

    def options(self) -> dict[str, Any]:
        """Constructor options (recorded in metadata, passed back on loading)."""
        return {}
