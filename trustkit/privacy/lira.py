"""LiRA, the likelihood-ratio membership attack (Carlini et al. 2022, "Membership Inference Attacks From First
Principles"), from shadow-model statistics.

The signal is the *logit-scaled confidence* of the true label, φ = log(p_y / (1 − p_y)), which is close to
Gaussian over models trained with and without an image (the raw confidence piles up at 1). For each candidate
image, the shadow models trained on it give the IN distribution N(μ_in, σ_in²) and those trained without it the
OUT distribution N(μ_out, σ_out²):

- online: score = log N(φ_target; μ_in, σ_in²) − log N(φ_target; μ_out, σ_out²) (the likelihood ratio);
- offline (OUT models only, so shadows need not be retrained per candidate): a one-sided test against OUT,
  score = −log Pr[Z > φ_target] with Z ~ N(μ_out, σ_out²) (the paper's Algorithm 1, offline branch).

With several queries per image (augmented views) each view gets its own Gaussian and the per-view scores are
averaged. With few shadow models a per-image variance is a poor estimate, so below ``GLOBAL_VARIANCE_BELOW``
models one variance is pooled over all images (the paper's recommendation under 64 shadow models): the mean of
the squared deviations of every shadow's φ from its image's own IN (or OUT) mean.

Higher scores mean "more likely a member" throughout.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.stats import norm

from trustkit.errors import InvalidArgumentError

GLOBAL_VARIANCE_BELOW = 64  # shadow models; below this, one pooled variance (Carlini et al. 2022, Sec. VI-A)
VARIANCES = ("auto", "global", "per-example")
MIN_STD = 1e-6  # floor of a fitted standard deviation (in logit units): a constant column must not divide by 0


def scaled_logit(logits: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> np.ndarray:
    """φ = log p_y − log(1 − p_y) of each row's label ``y`` under the softmax of ``logits`` (N×C), float64.

    Computed as z_y − logsumexp_{j≠y} z_j, which is exact and stays finite where p_y rounds to 1 (a member of an
    overfit model): the softmax itself would give log(1/0)."""
    z = torch.as_tensor(logits).double()
    y = torch.as_tensor(labels).long()
    true = z.gather(1, y[:, None]).squeeze(1)
    others = z.scatter(1, y[:, None], float("-inf"))
    return (true - torch.logsumexp(others, dim=1)).numpy()


def _fit(values: np.ndarray, mask: np.ndarray, pooled: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean (N×Q), standard deviation (N×Q or 1×Q) and count (N) of the shadows ``mask`` selects per image.

    ``values``: K×N×Q; ``mask``: K×N booleans."""
    weights = mask[:, :, None].astype(np.float64)
    count = weights.sum(0)  # N×1
    mean = (values * weights).sum(0) / np.maximum(count, 1)
    squared = ((values - mean[None]) ** 2) * weights
    if pooled:
        dof = np.maximum(count - 1, 0).sum()
        variance = squared.sum((0, 1)) / max(dof, 1)
        std = np.sqrt(variance)[None, :]
    else:
        std = np.sqrt(squared.sum(0) / np.maximum(count - 1, 1))
    return mean, np.maximum(std, MIN_STD), count[:, 0]


def _pooled(variance: str, shadows: int) -> bool:
    if variance not in VARIANCES:
        raise InvalidArgumentError(f"unknown LiRA variance '{variance}'; use one of: {', '.join(VARIANCES)}")
    return variance == "global" or (variance == "auto" and shadows < GLOBAL_VARIANCE_BELOW)


def _check(target: np.ndarray, shadows: np.ndarray, member_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    target = np.asarray(target, dtype=np.float64)
    shadows = np.asarray(shadows, dtype=np.float64)
    if target.ndim == 1:
        target, shadows = target[:, None], shadows[:, :, None]
    if shadows.ndim != 3 or shadows.shape[1:] != target.shape or np.shape(member_of) != shadows.shape[:2]:
        raise InvalidArgumentError(f"LiRA needs target φ N×Q, shadow φ K×N×Q and membership K×N; got "
                                   f"{target.shape}, {shadows.shape}, {np.shape(member_of)}")
    if not (np.isfinite(target).all() and np.isfinite(shadows).all()):
        raise InvalidArgumentError("LiRA got NaN/inf confidences; check the models' outputs")
    return target, shadows


def lira_online(target: np.ndarray, shadows: np.ndarray, member_of: np.ndarray, *,
                variance: str = "auto") -> np.ndarray:
    """Online LiRA scores (N) of the target's φ ``target`` (N or N×Q views) given the shadows' φ ``shadows``
    (K×N or K×N×Q) and ``member_of`` (K×N: shadow k was trained on image n).

    An image no shadow was trained on (or every shadow was) borrows the average IN−OUT shift of the others, so
    every image gets a score on the same scale."""
    target, shadows = _check(target, shadows, member_of)
    member_of = np.asarray(member_of, dtype=bool)
    if len(shadows) < 2:
        raise InvalidArgumentError("online LiRA needs at least 2 shadow models (IN and OUT); use --shadow-models 16")
    pooled = _pooled(variance, len(shadows))
    mean_in, std_in, n_in = _fit(shadows, member_of, pooled)
    mean_out, std_out, n_out = _fit(shadows, ~member_of, pooled)
    both = (n_in > 0) & (n_out > 0)
    if not both.any():
        raise InvalidArgumentError("no image has both IN and OUT shadow models; train more shadow models")
    shift = (mean_in[both] - mean_out[both]).mean(0)
    mean_in = np.where((n_in > 0)[:, None], mean_in, mean_out + shift)
    mean_out = np.where((n_out > 0)[:, None], mean_out, mean_in - shift)
    if not pooled:  # an image without IN (OUT) shadows has no own spread either: use the median one
        std_in = np.where((n_in > 1)[:, None], std_in, np.median(std_in[n_in > 1], 0) if (n_in > 1).any() else 1.0)
        std_out = np.where((n_out > 1)[:, None], std_out,
                           np.median(std_out[n_out > 1], 0) if (n_out > 1).any() else 1.0)
    ratio = norm.logpdf(target, mean_in, std_in) - norm.logpdf(target, mean_out, std_out)
    return ratio.mean(1)


def lira_offline(target: np.ndarray, shadows: np.ndarray, member_of: np.ndarray, *,
                 variance: str = "auto") -> np.ndarray:
    """Offline LiRA scores (N): −log Pr[Z > φ_target], Z ~ N(μ_out, σ_out²) fitted on the shadows that were
    *not* trained on each image (same shapes as :func:`lira_online`).

    IN shadows do not enter a score, except for an image every shadow was trained on (likely only with few
    shadows): its OUT mean is its IN mean less the average IN−OUT gap of the other images."""
    target, shadows = _check(target, shadows, member_of)
    member_of = np.asarray(member_of, dtype=bool)
    out = ~member_of
    pooled = _pooled(variance, len(shadows))
    mean_out, std_out, n_out = _fit(shadows, out, pooled)
    if (n_out == 0).any():
        mean_in, _, n_in = _fit(shadows, member_of, pooled)
        both = (n_in > 0) & (n_out > 0)
        if not both.any():
            raise InvalidArgumentError("no image has both IN and OUT shadow models; train more shadow models")
        shift = (mean_in[both] - mean_out[both]).mean(0)
        mean_out = np.where((n_out > 0)[:, None], mean_out, mean_in - shift)
    if not pooled:
        std_out = np.where((n_out > 1)[:, None], std_out,
                           np.median(std_out[n_out > 1], 0) if (n_out > 1).any() else 1.0)
    return (-norm.logsf(target, mean_out, std_out)).mean(1)


# The augmented views an image is queried with, in order: the image, then 1-pixel shifts (zero padded), plus the
# mirror image first for data sets trained with flips (a view the model was trained to treat like the image).
SHIFTS = ((0, 1), (0, -1), (1, 0), (-1, 0))


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    shifted = torch.zeros_like(x)
    h, w = x.shape[-2:]
    shifted[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        x[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return shifted


def max_queries(flips: bool) -> int:
    """How many distinct views :func:`query_views` can give."""
    return 1 + int(flips) + len(SHIFTS)


def query_views(x: torch.Tensor, queries: int, *, flips: bool) -> list[torch.Tensor]:
    """The first ``queries`` views of the images ``x`` (N×C×H×W): identity, mirror (``flips``), 1-pixel shifts."""
    if not 1 <= queries <= max_queries(flips):
        raise InvalidArgumentError(f"--queries must be between 1 and {max_queries(flips)} for this data set "
                                   f"(identity{', mirror' if flips else ''} and {len(SHIFTS)} one-pixel shifts), "
                                   f"got {queries}")
    views = [x] + ([x.flip(-1)] if flips else []) + [_shift(x, dy, dx) for dy, dx in SHIFTS]
    return views[:queries]
