"""Log-likelihood pieces for VAEs, in nats: Gaussian KL, Bernoulli likelihood, ELBO and the importance-weighted
bound of Burda et al. (2016).

log p(x) ≥ E_q[log p(x|z)] − KL(q(z|x) ‖ p(z)) = ELBO, and, with K samples z_k ~ q(z|x),
log p(x) ≥ log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x) = L_K, with L_1 ≤ L_K ≤ log p(x) in expectation and
L_K → log p(x) as K grows. The NLL reported is −L_K (an upper bound on the true NLL, tighter with K).
"""
from __future__ import annotations

import math
from typing import Callable, Protocol

import torch
import torch.nn.functional as F

from trustkit.batches import map_batches

LOG_2PI = math.log(2 * math.pi)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) per sample (nats): Σ (σ² + μ² − log σ² − 1) / 2 over the last dimension."""
    return 0.5 * (logvar.exp() + mu.pow(2) - logvar - 1).sum(-1)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; μ, diag σ²) summed over the last dimension (nats)."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def bernoulli_log_likelihood(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """log p(target | logits) of independent Bernoulli pixels, summed per sample (nats); target in [0, 1]."""
    return -F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Stochastic binarisation: each pixel becomes 1 with probability equal to its intensity in [0, 1]."""
    if generator is None:
        return torch.bernoulli(x)
    return (torch.rand(x.shape, generator=generator).to(x.device) < x).to(x.dtype)


class LatentVariableModel(Protocol):
    """What the estimators need: q(z|x) as a diagonal Gaussian and log p(x|z)."""

    def posterior(self, x: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]: ...

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor: ...


def _repeat(t: torch.Tensor, times: int) -> torch.Tensor:
    """``times`` stacked copies of a batch, flattened into one batch (copy-major order)."""
    return t.unsqueeze(0).expand(times, *t.shape).reshape(-1, *t.shape[1:])


@torch.no_grad()
def elbo(model: LatentVariableModel, x: torch.Tensor, labels: torch.Tensor | None = None,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """One-sample ELBO per image (nats): log p(x|z) − KL(q(z|x) ‖ N(0, I)) with z ~ q(z|x)."""
    mu, logvar = model.posterior(x, labels)
    noise = torch.randn(mu.shape, generator=generator).to(mu)
    z = mu + (0.5 * logvar).exp() * noise
    return model.log_likelihood(x, z, labels) - gaussian_kl(mu, logvar)


@torch.no_grad()
def importance_weighted_log_likelihood(model: LatentVariableModel, x: torch.Tensor,
                                       labels: torch.Tensor | None = None, k: int = 100,
                                       generator: torch.Generator | None = None,
                                       chunk: int = 100) -> torch.Tensor:
    """L_K per image (nats): log-mean-exp over ``k`` samples of log p(x|z) + log p(z) − log q(z|x).

    Images are processed one mini-batch at a time and the K samples ``chunk`` at a time (memory ~ N·chunk).
    """
    mu, logvar = model.posterior(x, labels)
    weights = []
    for start in range(0, k, chunk):
        size = min(chunk, k - start)
        noise = torch.randn((size, *mu.shape), generator=generator).to(mu)
        z = mu + (0.5 * logvar).exp() * noise  # size × N × D
        flat_z = z.reshape(-1, mu.shape[-1])
        log_px = model.log_likelihood(_repeat(x, size), flat_z, None if labels is None else _repeat(labels, size))
        log_pz = gaussian_log_density(flat_z, torch.zeros_like(flat_z), torch.zeros_like(flat_z))
        log_qz = gaussian_log_density(z, mu, logvar).reshape(-1)
        weights.append((log_px + log_pz - log_qz).view(size, -1))
    return torch.logsumexp(torch.cat(weights), dim=0) - math.log(k)


def batched(fn: Callable[..., torch.Tensor], x: torch.Tensor, labels: torch.Tensor | None, batch_size: int,
            device: torch.device, **kwargs: object) -> torch.Tensor:
    """Apply a per-image estimator over ``x`` in batches on ``device``; returns a CPU tensor (N,)."""
    return map_batches(lambda xb, yb: fn(xb, yb, **kwargs), x, labels, batch_size=batch_size, device=device)


def mean_loss(model: "torch.nn.Module", x: torch.Tensor, labels: torch.Tensor, device: torch.device,
              batch_size: int = 500) -> float:
    """The model's own training loss (its ``loss(x, labels)[0]``, a batch mean) averaged over all of ``x``,
    each batch weighted by its size."""
    totals = map_batches(lambda xb, yb: model.loss(xb, yb)[0].detach().reshape(1) * len(xb), x, labels,
                         batch_size=batch_size, device=device)
    return float(totals.sum()) / len(x)
