"""Sample-quality metrics on feature vectors, all offline: Fréchet distance, KID, precision/recall, mode coverage.

The features come from a trustkit classifier trained on the same data set (``trustkit.generative.features``),
so the Fréchet distance here is a *domain FID*: it ranks generators on one data set but is not comparable
with published FIDs, which use Inception-v3 features of ImageNet.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from trustkit.errors import InvalidArgumentError


def _as_float64(features: torch.Tensor | np.ndarray) -> np.ndarray:
    array = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    array = array.astype(np.float64).reshape(len(array), -1)
    if not np.isfinite(array).all():
        raise InvalidArgumentError("features contain NaN or infinite values; check the generator's samples")
    return array


def feature_statistics(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean vector and covariance matrix (unbiased, float64) of N×D features; needs N >= 2."""
    array = _as_float64(features)
    if len(array) < 2:
        raise InvalidArgumentError(f"need at least 2 feature vectors for a covariance, got {len(array)}")
    return array.mean(0), np.cov(array, rowvar=False).reshape(array.shape[1], array.shape[1])


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet (2-Wasserstein²) distance of N(μ1, Σ1) and N(μ2, Σ2): ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2(Σ1Σ2)^½).

    Tr((Σ1Σ2)^½) is computed as Σ √λ of the symmetric PSD matrix Σ1^½ Σ2 Σ1^½ (same eigenvalues as Σ1Σ2),
    which stays real and stable where a general matrix square root would return complex round-off.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    root1 = _psd_sqrt(sigma1)
    product = root1 @ sigma2 @ root1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0, None)).sum()
    value = float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)
    return max(value, 0.0)  # round-off can give -1e-12 for identical statistics


def frechet_distance(features_a: torch.Tensor | np.ndarray, features_b: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of N×D features (squared feature units)."""
    return frechet_distance_from_stats(*feature_statistics(features_a), *feature_statistics(features_b))


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """k(x, y) = (xᵀy / d + 1)³, the kernel of KID (Bińkowski et al. 2018)."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(kxx: torch.Tensor, kyy: torch.Tensor, kxy: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD² from kernel matrices: mean off-diagonal k(x, x') + mean off-diagonal k(y, y') − 2 mean k(x, y)."""
    m, n = kxx.shape[0], kyy.shape[0]
    xx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    yy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return xx + yy - 2 * kxy.mean()


def kernel_inception_distance(features_a: torch.Tensor | np.ndarray, features_b: torch.Tensor | np.ndarray, *,
                              subsets: int = 100, subset_size: int = 1000,
                              generator: torch.Generator | None = None) -> tuple[float, float]:
    """KID: mean and standard deviation over ``subsets`` random subsets (without replacement, size
    ``min(subset_size, N_a, N_b)``) of the unbiased MMD² with the cubic polynomial kernel. Unbiased: ~0 (and
    possibly slightly negative) for two samples of one distribution."""
    a = torch.from_numpy(_as_float64(features_a))
    b = torch.from_numpy(_as_float64(features_b))
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise InvalidArgumentError(f"KID needs at least 2 samples per set, got {len(a)} and {len(b)}")
    generator = generator or torch.Generator().manual_seed(0)
    values = []
    for _ in range(subsets):
        x = a[torch.randperm(len(a), generator=generator)[:size]]
        y = b[torch.randperm(len(b), generator=generator)[:size]]
        values.append(mmd2_unbiased(polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)))
    stacked = torch.stack(values)
    return float(stacked.mean()), float(stacked.std()) if subsets > 1 else 0.0


def _kth_neighbour_radii(points: torch.Tensor, k: int, chunk: int = 1024) -> torch.Tensor:
    """Distance of every point to its k-th nearest other point of the same set."""
    radii = []
    for start in range(0, len(points), chunk):
        distances = torch.cdist(points[start:start + chunk], points)
        radii.append(distances.kthvalue(k + 1, dim=1).values)  # +1: the point itself is at distance 0
    return torch.cat(radii)


def _inside_any_ball(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    inside = []
    for start in range(0, len(queries), chunk):
        distances = torch.cdist(queries[start:start + chunk], centres)
        inside.append((distances <= radii[None, :]).any(dim=1))
    return torch.cat(inside)


def precision_recall(real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN balls in feature space.

    Precision: share of fake samples inside the k-NN ball of at least one real sample (fidelity).
    Recall: share of real samples inside the k-NN ball of at least one fake sample (diversity).
    """
    real_t = torch.from_numpy(_as_float64(real))
    fake_t = torch.from_numpy(_as_float64(fake))
    if min(len(real_t), len(fake_t)) <= k:
        raise InvalidArgumentError(f"precision/recall with k={k} needs more than {k} samples per set, got "
                                   f"{len(real_t)} real and {len(fake_t)} generated")
    precision = _inside_any_ball(fake_t, real_t, _kth_neighbour_radii(real_t, k)).double().mean().item()
    recall = _inside_any_ball(real_t, fake_t, _kth_neighbour_radii(fake_t, k)).double().mean().item()
    return precision, recall


@dataclass(frozen=True)
class ModeCoverage:
    """Class histogram of generated samples as labelled by a classifier.

    ``counts`` per class; ``modes_covered``: classes holding at least ``min_share`` of their uniform share
    (N/K); ``kl_to_uniform``: KL(p ‖ uniform) = log K − H(p) in nats (0 for a perfectly balanced histogram,
    log K when every sample falls in one class).
    """

    counts: tuple[int, ...]
    modes_covered: int
    kl_to_uniform: float

    @property
    def num_classes(self) -> int:
        return len(self.counts)


def mode_coverage(predicted: torch.Tensor, num_classes: int, min_share: float = 0.1) -> ModeCoverage:
    """Histogram, modes covered and KL to uniform for predicted class labels (see :class:`ModeCoverage`)."""
    predicted = torch.as_tensor(predicted).long().reshape(-1)
    if len(predicted) == 0:
        raise InvalidArgumentError("mode coverage needs at least one labelled sample")
    counts = torch.bincount(predicted, minlength=num_classes).double()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum().item()
    covered = int((counts >= min_share * len(predicted) / num_classes).sum())
    return ModeCoverage(tuple(int(c) for c in counts.tolist()), covered, max(math.log(num_classes) - entropy, 0.0))


def conditional_agreement(probabilities: torch.Tensor, asked: torch.Tensor, threshold: float = 0.9) -> dict[str, float]:
    """How well samples match the class they were generated for, judged by a classifier's softmax outputs.

    ``accuracy``: share labelled as the asked class; ``confident``: share labelled as the asked class with
    probability >= ``threshold``.
    """
    asked = torch.as_tensor(asked).long().to(probabilities.device)
    confidence, predicted = probabilities.max(dim=1)
    correct = predicted == asked
    return {"accuracy": correct.double().mean().item(),
            "confident": (correct & (confidence >= threshold)).double().mean().item()}
