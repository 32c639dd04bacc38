"""Randomized smoothing (Cohen, Rosenfeld & Kolter 2019): the smoothed classifier, PREDICT, CERTIFY, and the
SmoothAdv-style attack (Salman et al. 2019) that checks the certificates empirically.

The smoothed classifier of a base classifier f at noise level σ is g(x) = argmax_c P(f(x + ε) = c), ε ~ N(0, σ²I),
with the noise added on the [0, 1] pixel scale and never clipped (as Cohen et al.'s code). If the top class has
probability p_A ≥ p̲_A > 1/2, then g is constant within the ℓ2 ball of radius σ·Φ⁻¹(p̲_A) around x.

Noise is drawn on the model's device in batches that mix several images; each image draws from its own generator,
seeded by (seed, the image's index, the purpose of the draw), in pieces of ``min(n, batch_size)`` samples, so an
image's counts depend neither on which other images share its batches nor on how a sample is split into chunks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from trustkit.models.inference import input_gradients_only

ABSTAIN = -1

# the purposes of noise draws: each gets its own stream per image
SELECTION, ESTIMATION, PREDICTION = 0, 1, 2


def max_certifiable_radius(sigma: float, n: int, alpha: float) -> float:
    """The largest radius CERTIFY can return with ``n`` samples: σ·Φ⁻¹(α^(1/n)) (all ``n`` samples in the top
    class give the Clopper–Pearson lower bound α^(1/n)); pixel units on [0, 1], ℓ2."""
    from scipy.stats import norm

    return float(sigma * norm.ppf(alpha ** (1.0 / n)))


def lower_confidence_bound(successes: np.ndarray | int, n: int, alpha: float) -> np.ndarray:
    """One-sided (1 − α) Clopper–Pearson lower bound of a binomial proportion: the α quantile of
    Beta(k, n − k + 1); 0 where k = 0."""
    from scipy.stats import beta

    k = np.asarray(successes, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        bound = beta.ppf(alpha, k, n - k + 1)
    return np.where(k > 0, bound, 0.0)


def radius_from_bound(p_lower: np.ndarray, sigma: float) -> np.ndarray:
    """σ·Φ⁻¹(p̲_A) where p̲_A > 1/2, else 0 (ℓ2, pixel units)."""
    from scipy.stats import norm

    p = np.asarray(p_lower, dtype=float)
    return np.where(p > 0.5, sigma * norm.ppf(np.clip(p, 0.5, 1.0)), 0.0)


def two_sided_binomial_pvalues(top: np.ndarray, runner_up: np.ndarray) -> np.ndarray:
    """Per image the p-value of SciPy's exact two-sided binomial test of ``top`` successes in ``top + runner_up``
    trials against p = 1/2 (1.0 when there are no trials)."""
    from scipy.stats import binomtest

    return np.array([binomtest(int(a), int(a + b), 0.5).pvalue if a + b > 0 else 1.0
                     for a, b in zip(np.asarray(top), np.asarray(runner_up), strict=True)], dtype=float)


def _stream_seed(seed: int, index: int, purpose: int) -> int:
    """A 63-bit seed per (run seed, image index, purpose), mixed by NumPy's SeedSequence."""
    return int(np.random.SeedSequence([seed % 2**63, index % 2**63, purpose]).generate_state(1, np.uint64)[0]
               % (2**63 - 1))


@dataclass
class Certificate:
    """CERTIFY's answer per image: the class (``ABSTAIN`` = -1), the lower bound p̲_A, the radius (ℓ2, pixel
    units; 0 when abstaining), and the n-sample counts it rests on (N×K, int64)."""

    prediction: np.ndarray
    p_lower: np.ndarray
    radius: np.ndarray
    counts: np.ndarray


class Smoothed:
    """The Gaussian-smoothed version of ``model`` (images N×C×H×W in [0, 1]) at noise ``sigma`` (pixel units).

    ``batch_size`` noisy images go through the model at once, on ``device`` (default: the model's)."""

    def __init__(self, model: nn.Module, sigma: float, *, batch_size: int = 1000,
                 device: torch.device | str | None = None, num_classes: int | None = None) -> None:
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a finite number > 0, got {sigma}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model = model.eval()
        self.sigma = float(sigma)
        self.batch_size = batch_size
        self.device = torch.device(device) if device is not None else next(
            iter(model.parameters()), torch.empty(0)).device
        self.num_classes = num_classes

    @torch.no_grad()
    def sample_counts(self, x: torch.Tensor, n: int, *, seed: int = 0, index: torch.Tensor | None = None,
                      purpose: int = ESTIMATION) -> torch.Tensor:
        """How often the base model predicts each class over ``n`` noisy copies of each image: N×K int64 (CPU).

        ``index`` (default 0..N-1) names each image for its noise stream (the test-set index), ``purpose``
        separates independent draws of one image (selection, estimation, prediction)."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        x = x.to(self.device, torch.float32)
        self._infer_classes(x)
        index = torch.arange(len(x)) if index is None else index.cpu()
        piece = min(n, self.batch_size)
        per_batch = max(1, self.batch_size // piece)  # whole pieces of one image's samples per forward pass
        generators = []
        for i in index.tolist():
            generator = torch.Generator(device=self.device)
            generator.manual_seed(_stream_seed(seed, i, purpose))
            generators.append(generator)
        tasks = [(i, min(piece, n - start)) for i in range(len(x)) for start in range(0, n, piece)]
        k = int(self.num_classes or 0)
        counts = torch.zeros(len(x) * k, dtype=torch.long, device=self.device)
        for start in range(0, len(tasks), per_batch):
            batch = tasks[start:start + per_batch]
            owners = torch.cat([torch.full((size,), i, dtype=torch.long) for i, size in batch]).to(self.device)
            noise = torch.cat([torch.randn((size, *x.shape[1:]), generator=generators[i], device=self.device)
                               for i, size in batch])
            labels = self.model(x[owners] + self.sigma * noise).argmax(1)
            counts.index_add_(0, owners * k + labels, torch.ones_like(labels))
        return counts.view(len(x), k).cpu()

    def _infer_classes(self, x: torch.Tensor) -> None:
        if self.num_classes is None and len(x):
            with torch.no_grad():
                self.num_classes = int(self.model(x[:1].to(self.device, torch.float32)).shape[1])

    # --- Cohen et al.'s procedures ----------------------------------------------------------------------
    def predict(self, x: torch.Tensor, n: int, alpha: float, *, seed: int = 0,
                index: torch.Tensor | None = None) -> np.ndarray:
        """PREDICT: the top class of ``n`` noisy samples, or ``ABSTAIN`` unless SciPy's two-sided binomial test
        of the top two counts rejects a tie at level ``alpha``. Returns a wrong class with probability ≤ α."""
        return predict_from_counts(self.sample_counts(x, n, seed=seed, index=index, purpose=PREDICTION).numpy(),
                                   alpha)

    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float, *, seed: int = 0,
                index: torch.Tensor | None = None) -> Certificate:
        """CERTIFY: the class guess ĉ_A from ``n0`` samples, the (1 − α) lower bound p̲_A of its probability
        from ``n`` fresh samples, and the radius σ·Φ⁻¹(p̲_A); ``ABSTAIN`` (radius 0) when p̲_A ≤ 1/2."""
        guess = self.sample_counts(x, n0, seed=seed, index=index, purpose=SELECTION).argmax(1).numpy()
        counts = self.sample_counts(x, n, seed=seed, index=index, purpose=ESTIMATION).numpy()
        top = counts[np.arange(len(guess)), guess]
        p_lower = lower_confidence_bound(top, n, alpha)
        certified = p_lower > 0.5
        return Certificate(np.where(certified, guess, ABSTAIN), p_lower, radius_from_bound(p_lower, self.sigma),
                           counts)


def predict_from_counts(counts: np.ndarray, alpha: float) -> np.ndarray:
    """PREDICT's decision from N×K counts: the top class where the two-sided binomial test of the top two counts
    has p-value ≤ ``alpha``, else ``ABSTAIN``."""
    order = np.argsort(-counts, axis=1, kind="stable")
    rows = np.arange(len(counts))
    top, runner_up = counts[rows, order[:, 0]], counts[rows, order[:, 1]] if counts.shape[1] > 1 else 0 * order[:, 0]
    pvalues = two_sided_binomial_pvalues(top, runner_up)
    return np.where(pvalues <= alpha, order[:, 0], ABSTAIN)


def soft_smoothed_loss(model: nn.Module, x: torch.Tensor, target: torch.Tensor, sigma: float,
                       noise: torch.Tensor) -> torch.Tensor:
    """Summed −log of the soft smoothed classifier's probability of ``target``: the mean softmax over the m noise
    samples ``noise`` (N×m×C×H×W) of each image (Salman et al. 2019's SmoothAdv objective, Monte-Carlo EOT)."""
    n, m = noise.shape[:2]
    noisy = (x.unsqueeze(1) + sigma * noise).reshape(n * m, *x.shape[1:])
    probabilities = model(noisy).float().softmax(1).reshape(n, m, -1).mean(1)
    return -probabilities.gather(1, target[:, None]).clamp_min(1e-12).log().sum()


def smooth_adversarial(model: nn.Module, x: torch.Tensor, target: torch.Tensor, eps: torch.Tensor, sigma: float,
                       *, steps: int = 20, samples: int = 16, seed: int = 0, batch_size: int = 1000) -> torch.Tensor:
    """ℓ2 PGD on the soft smoothed classifier (mean softmax over ``samples`` noise draws per step, fresh each
    step): pushes each image away from ``target`` within its own budget ``eps`` (N, ℓ2, pixel units), inside
    [0, 1]. Step size 2.5·eps/steps along the normalised gradient; the result satisfies ‖x_adv − x‖₂ ≤ eps."""
    device = x.device
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    per_batch = max(1, batch_size // samples)
    shape = (-1, *[1] * (x.ndim - 1))
    out = []
    with input_gradients_only(model):
        for start in range(0, len(x), per_batch):
            xb, tb, eb = x[start:start + per_batch], target[start:start + per_batch], eps[start:start + per_batch]
            step = (2.5 * eb / steps).view(shape)
            budget = eb.view(shape)
            x_adv = xb.clone()
            for _ in range(steps):
                x_adv.requires_grad_(True)
                noise = torch.randn((len(xb), samples, *xb.shape[1:]), generator=generator, device=device)
                loss = soft_smoothed_loss(model, x_adv, tb, sigma, noise)
                (grad,) = torch.autograd.grad(loss, x_adv)
                norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)
                x_adv = x_adv.detach() + step * grad / norms
                x_adv = _project_l2(x_adv, xb, budget)
            out.append(x_adv.detach())
    return torch.cat(out) if out else x.clone()


def _project_l2(x_adv: torch.Tensor, x: torch.Tensor, budget: torch.Tensor) -> torch.Tensor:
    """Into each image's ℓ2 ball (with a small margin for float32 rounding) and [0, 1]; shrinks again where the
    clamp and rounding leave a norm above the budget."""
    delta = x_adv - x
    norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(budget.shape)
    delta = delta * (budget * (1 - 1e-5) / norms).clamp(max=1.0)
    out = (x + delta).clamp(0.0, 1.0)
    for _ in range(5):
        over = (out - x).flatten(1).norm(dim=1).view(budget.shape) > budget
        if not bool(over.any()):
            break
        out = torch.where(over, x + (out - x) * 0.999, out)
    return out
