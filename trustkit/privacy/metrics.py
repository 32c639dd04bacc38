"""Reconstruction quality: PSNR, SSIM (Wang et al. 2004) and re-identification accuracy.

All images are N×C×H×W in [0, 1]; every function returns one value per image so callers can average,
take intervals or pick examples. Higher means a better reconstruction, i.e. more leakage.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

PSNR_CAP = 100.0  # dB reported for identical images (the true value is +inf)
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5  # Wang et al. 2004
SSIM_K1, SSIM_K2 = 0.01, 0.03
UNRECOGNISABLE_SSIM = 0.3  # He et al. 2019: reconstructions below this are not recognisable


def psnr(reconstruction: torch.Tensor, original: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image in dB: 10·log10(L² / MSE), L = ``data_range``; capped at 100 dB."""
    mse = (reconstruction.float() - original.float()).pow(2).flatten(1).mean(1)
    value = 10 * torch.log10(data_range ** 2 / mse.clamp_min(1e-30))
    return value.clamp(max=PSNR_CAP)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """A size×size Gaussian kernel with standard deviation ``sigma`` (pixels), summing to 1."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim_window_for(height: int, width: int) -> tuple[int, float]:
    """(window size, sigma): Wang et al.'s 11×11, σ = 1.5 when it fits; smaller images (8×8 digits) get the
    largest odd window that fits with σ scaled in proportion (7×7, σ ≈ 0.95 on 8×8)."""
    size = min(SSIM_WINDOW, height, width)
    size -= 1 - size % 2  # odd
    return size, SSIM_SIGMA * size / SSIM_WINDOW


def ssim(reconstruction: torch.Tensor, original: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Structural similarity per image (mean of the SSIM map over positions and channels), as in Wang et al.
    2004: Gaussian window 11×11 with σ = 1.5, C1 = (0.01·L)², C2 = (0.03·L)², statistics over 'valid' window
    positions only (no padding), computed in float64. 1 for identical images."""
    x = reconstruction.double()
    y = original.double()
    channels, height, width = x.shape[1:]
    size, sigma = ssim_window_for(height, width)
    kernel = gaussian_window(size, sigma).to(x.device).expand(channels, 1, size, size).contiguous()

    def blur(image: torch.Tensor) -> torch.Tensor:
        return F.conv2d(image, kernel, groups=channels)

    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    sigma_xx = blur(x * x) - mu_x ** 2
    sigma_yy = blur(y * y) - mu_y ** 2
    sigma_xy = blur(x * y) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)
    denominator = (mu_x ** 2 + mu_y ** 2 + c1) * (sigma_xx + sigma_yy + c2)
    return (numerator / denominator).flatten(1).mean(1).float()


def topk_hits(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Per image: 1.0 when the true label is among the ``k`` highest logits, else 0.0."""
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == labels.view(-1, 1)).any(1).float()


def chance_significant(hits: float, n: int, chance: float, z: float = 3.0) -> bool:
    """Whether a top-1 rate ``hits`` over ``n`` images beats ``chance`` by more than ``z`` binomial standard
    errors (z = 3: about p < 0.0013, one-sided)."""
    if n <= 0:
        return False
    return hits > chance + z * math.sqrt(chance * (1 - chance) / n)
