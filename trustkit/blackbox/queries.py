"""The target of a substitute attack as a label-only oracle that counts the images it is asked about
(one query per image, as :mod:`trustkit.attacks.queries` counts them)."""
from __future__ import annotations

import torch
from torch import nn

from trustkit.models.inference import predict_labels


class LabelOracle:
    """The target as a label-only oracle (Papernot et al. 2017): ``oracle(x)`` returns only the predicted
    labels, never scores or gradients, and counts every image asked about in ``queries``."""

    def __init__(self, model: nn.Module, device: torch.device, batch_size: int = 512) -> None:
        self._model, self._device, self._batch_size = model, device, batch_size
        self.queries = 0

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted labels (int64, CPU) of images ``x`` (N×C×H×W in [0, 1], any device)."""
        labels = predict_labels(self._model, x, batch_size=self._batch_size, device=self._device)
        self.queries += len(x)
        return labels
