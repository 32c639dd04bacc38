"""Spectral detector (Durall et al. 2020): the azimuthal average of the log FFT magnitude + logistic regression.

Up-sampling by transposed convolutions leaves periodic peaks at high frequencies that survive averaging over
rings; one 1-D profile per image is enough for a linear classifier to separate many generators from photos.
"""
from __future__ import annotations

import numpy as np
import torch

from trustkit.detection.base import Detector
from trustkit.detection.features import azimuthal_spectrum
from trustkit.detection.linear import LinearProbe


class SpectralDetector(Detector):
    name = "spectral"

    def __init__(self, c: float = 1.0) -> None:
        self.c = float(c)
        self.probe: LinearProbe | None = None

    def options(self) -> dict[str, float]:
        return {"c": self.c}

    def fit(self, x: torch.Tensor, y: torch.Tensor, *, seed: int = 0, device: torch.device | None = None) -> None:
        self.probe = LinearProbe.fit(azimuthal_spectrum(x), y.numpy(), c=self.c, seed=seed)

    def score(self, x: torch.Tensor, *, device: torch.device | None = None) -> np.ndarray:
        return self.probe.score(azimuthal_spectrum(x))

    def state(self) -> dict[str, torch.Tensor]:
        return self.probe.tensors()

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self.probe = LinearProbe.from_tensors(tensors)
