"""DCT detector (Frank et al. 2020): log magnitudes of the 2-D DCT of the luminance + a linear model.

GAN up-sampling leaves a grid of energy in the DCT spectrum that a linear model on log coefficients picks up;
features are standardised and the logistic regression is L2-regularised (inverse strength ``c``).
"""
from __future__ import annotations

import numpy as np
import torch

from trustkit.detection.base import Detector
from trustkit.detection.features import log_dct
from trustkit.detection.linear import LinearProbe


class DCTDetector(Detector):
    name = "dct"

    def __init__(self, c: float = 0.01) -> None:
        self.c = float(c)
        self.probe: LinearProbe | None = None

    def options(self) -> dict[str, float]:
        return {"c": self.c}

    def fit(self, x: torch.Tensor, y: torch.Tensor, *, seed: int = 0, device: torch.device | None = None) -> None:
        self.probe = LinearProbe.fit(log_dct(x), y.numpy(), c=self.c, seed=seed)

    def score(self, x: torch.Tensor, *, device: torch.device | None = None) -> np.ndarray:
        return self.probe.score(log_dct(x))

    def state(self) -> dict[str, torch.Tensor]:
        return self.probe.tensors()

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self.probe = LinearProbe.from_tensors(tensors)
