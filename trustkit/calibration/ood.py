"""Out-of-distribution detection from a classifier's logits: scores, their AUROC/AUPR/FPR@95%TPR, and the
conversion of another data set's images to the model's input shape.

Scores (higher = more in-distribution, for both):

- ``max_softmax``: the largest softmax probability (Hendrycks & Gimpel, "A Baseline for Detecting Misclassified
  and Out-of-Distribution Examples", ICLR 2017).
- ``energy``: the negative free energy −E(x) = T·logsumexp(f(x)/T) with T = 1 (Liu et al., "Energy-based
  Out-of-distribution Detection", NeurIPS 2020). Liu et al. define the energy E(x) = −T·logsumexp(f(x)/T), which
  is *lower* on in-distribution inputs; trustkit reports its negative so that both scores point the same way.

In-distribution images are the positive class of every metric (AUROC, AUPR-In = ``aupr``; ``aupr_out`` treats
the OOD images as positives with the negated score), computed by scikit-learn. FPR at 95% TPR is the fraction of
OOD images still accepted at the threshold that keeps 95% of the in-distribution ones.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from trustkit.errors import InvalidArgumentError, ShapeMismatchError

NOISE = "noise"  # the built-in OOD set: uniform noise images of the model's input shape
NOISE_SEED_OFFSET = 104729  # the noise draws its own stream, apart from the sample subsets of the same seed
AUROC_FLAG = 0.6  # AUROC at or below this: the score barely tells the OOD set from the test set
TPR_LEVEL = 0.95
LUMINANCE = (0.299, 0.587, 0.114)  # ITU-R BT.601, as Pillow's RGB -> "L"


def max_softmax(logits: torch.Tensor) -> torch.Tensor:
    """The largest softmax probability per row (fraction in [0, 1]; Hendrycks & Gimpel 2017)."""
    return logits.double().softmax(1).max(1).values


def energy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Negative free energy T·logsumexp(logits/T) per row (Liu et al. 2020's −E(x); higher = in-distribution)."""
    return temperature * torch.logsumexp(logits.double() / temperature, dim=1)


OOD_SCORES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"max_softmax": max_softmax, "energy": energy}


def fpr_at_tpr(in_scores: np.ndarray, out_scores: np.ndarray, tpr: float = TPR_LEVEL) -> float:
    """The fraction of OOD images scored at or above the highest threshold that keeps ``tpr`` of the
    in-distribution images (from scikit-learn's ROC curve, all thresholds)."""
    from sklearn.metrics import roc_curve

    labels, scores = _labelled(in_scores, out_scores)
    fpr, true_rate, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(fpr[np.searchsorted(true_rate, tpr - 1e-12)])


def _labelled(in_scores: np.ndarray, out_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(in_scores, dtype=np.float64).ravel(), np.asarray(out_scores, dtype=np.float64).ravel()
    if not a.size or not b.size:
        raise ValueError("OOD metrics need at least one in-distribution and one OOD score")
    return np.r_[np.ones(a.size), np.zeros(b.size)], np.r_[a, b]


def ood_metrics(in_scores: np.ndarray, out_scores: np.ndarray) -> dict[str, float | int]:
    """AUROC, AUPR-In (``aupr``), AUPR-Out (``aupr_out``) and FPR at 95% TPR of a score that should be higher
    on the in-distribution images (fractions), with both sets' sizes and mean scores."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels, scores = _labelled(in_scores, out_scores)
    return {"auroc": float(roc_auc_score(labels, scores)), "aupr": float(average_precision_score(labels, scores)),
            "aupr_out": float(average_precision_score(1 - labels, -scores)),
            "fpr_at_95_tpr": fpr_at_tpr(in_scores, out_scores),
            "mean_score_in": float(np.mean(in_scores)), "mean_score_out": float(np.mean(out_scores)),
            "n_in": int(np.size(in_scores)), "n_out": int(np.size(out_scores))}


def roc_points(in_scores: np.ndarray, out_scores: np.ndarray, most: int = 200) -> dict[str, list[float]]:
    """The ROC curve (false- and true-positive rates, in-distribution positive) thinned to at most ``most``
    points, ends kept: what a report draws."""
    from sklearn.metrics import roc_curve

    labels, scores = _labelled(in_scores, out_scores)
    fpr, tpr, _ = roc_curve(labels, scores)
    if len(fpr) > most:
        keep = np.unique(np.r_[np.linspace(0, len(fpr) - 1, most).round().astype(int), len(fpr) - 1])
        fpr, tpr = fpr[keep], tpr[keep]
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist()}


def convert_images(x: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Images N×C×H×W in [0, 1] as N×C'×H'×W' = ``shape``: colour to grey by luminance (BT.601 weights) or grey
    to colour by repeating the channel, then an antialiased bilinear resize (torch ``interpolate``) to H'×W'
    (aspect ratio not kept). The result stays in [0, 1]."""
    if x.ndim != 4:
        raise ShapeMismatchError(f"images must be N×C×H×W, got shape {tuple(x.shape)}; pass a batch of images")
    channels, height, width = shape
    x = x.float()
    if x.shape[1] != channels:
        if x.shape[1] == 3 and channels == 1:
            x = (x * torch.tensor(LUMINANCE, dtype=x.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)
        elif x.shape[1] == 1 and channels == 3:
            x = x.expand(-1, 3, -1, -1)
        else:
            raise ShapeMismatchError(f"cannot convert {x.shape[1]}-channel images to {channels} channels; "
                                     "only grey ↔ RGB conversions are defined")
    if tuple(x.shape[-2:]) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp(0.0, 1.0).contiguous()


def conversion_note(source: tuple[int, ...], target: tuple[int, int, int]) -> str:
    """How :func:`convert_images` turns ``source`` (C×H×W) into ``target``: ``3×32×32 → 1×28×28 (luminance,
    antialiased resize)``, or ``as is``."""
    steps = []
    if source[0] != target[0]:
        steps.append("luminance" if source[0] == 3 else "grey repeated")
    if tuple(source[1:]) != tuple(target[1:]):
        steps.append("antialiased resize")
    shape = "×".join(str(s) for s in source)
    return f"{shape} → {'×'.join(str(s) for s in target)} ({', '.join(steps)})" if steps else f"{shape} as is"


def noise_images(n: int, shape: tuple[int, int, int], seed: int) -> torch.Tensor:
    """``n`` images of uniform noise, every pixel U(0, 1) independently (seeded: same seed, same images)."""
    if n < 1:
        raise InvalidArgumentError(f"--n-ood must be at least 1, got {n}")
    generator = torch.Generator().manual_seed(seed + NOISE_SEED_OFFSET)
    return torch.rand((n, *shape), generator=generator)
