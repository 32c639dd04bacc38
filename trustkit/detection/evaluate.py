"""Detector evaluation: AUC, AP, calibrated accuracy; cross-generator matrix; degradations; adversarial evasion."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from trustkit.detection.base import FAKE, REAL, Detector


@dataclass(frozen=True)
class Scores:
    """Threshold-free and calibrated quality of P(fake) scores against labels (fractions in [0, 1])."""

    auc: float
    ap: float
    accuracy: float
    threshold: float

    def as_dict(self) -> dict[str, float]:
        return {"auc": self.auc, "ap": self.ap, "accuracy": self.accuracy, "threshold": self.threshold}


def calibrate_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold on P(fake) with the best balanced accuracy on validation data (midpoint between scores).

    Accuracy at 0.5 misleads when a detector meets an unseen generator: its scores shift, so the operating
    point must come from held-out data of known provenance.
    """
    order = np.unique(scores)
    candidates = np.concatenate([[order[0] - 1e-9], (order[:-1] + order[1:]) / 2, [order[-1] + 1e-9]])
    real, fake = scores[labels == REAL], scores[labels == FAKE]
    best, best_threshold = -1.0, 0.5
    for threshold in candidates:
        balanced = ((real < threshold).mean() + (fake >= threshold).mean()) / 2
        if balanced > best:
            best, best_threshold = balanced, float(threshold)
    return best_threshold


def score_quality(scores: np.ndarray, labels: np.ndarray, threshold: float) -> Scores:
    """AUC (ROC), average precision (fake = positive) and accuracy at ``threshold``."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    if len(np.unique(labels)) < 2:
        return Scores(math.nan, math.nan, math.nan, threshold)
    accuracy = float(((scores >= threshold).astype(int) == labels).mean())
    return Scores(float(roc_auc_score(labels, scores)), float(average_precision_score(labels, scores)), accuracy,
                  threshold)


def roc_points(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate) of the ROC curve."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    return fpr, tpr


def evade(detector: Detector, fakes: torch.Tensor, eps: float, *, steps: int = 100, device: torch.device,
          batch_size: int = 256) -> torch.Tensor:
    """Fakes pushed towards "real" by the strongest evasion trustkit has (linf ``eps``; see
    :func:`trustkit.detection.evasion.evade_strongest`), re-quantised to 8 bits: uint8 images."""
    from trustkit.detection.evasion import evade_strongest

    if eps == 0:
        return fakes
    return evade_strongest(detector, fakes, eps, steps=steps, device=device, batch_size=batch_size).images["strongest"]
