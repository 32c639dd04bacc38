"""Everyday image degradations a detector meets in the wild: JPEG, resizing, blur, noise (uint8 in, uint8 out)."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from trustkit.detection.data import to_uint8

Perturbation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255.0


def jpeg(quality: int) -> Perturbation:
    from trustkit.defenses.transforms import JPEG

    codec = JPEG(quality)
    return lambda x, g: to_uint8(codec.transform(_float(x)))


def resize(factor: float) -> Perturbation:
    """Down-sample by ``factor`` (bilinear, antialiased) and back up to the original size."""
    def apply(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        h, w = x.shape[-2:]
        small = F.interpolate(_float(x), scale_factor=factor, mode="bilinear", antialias=True, align_corners=False)
        return to_uint8(F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False))
    return apply


def blur(sigma: float) -> Perturbation:
    """Gaussian blur with standard deviation ``sigma`` pixels (kernel 2·ceil(3σ)+1)."""
    radius = max(1, int(-(-3 * sigma // 1)))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-offsets**2 / (2 * sigma**2))
    kernel = kernel / kernel.sum()

    def apply(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        images = _float(x)
        c = images.shape[1]
        horizontal = kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
        vertical = kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
        padded = F.pad(images, (radius, radius, radius, radius), mode="replicate")
        out = F.conv2d(F.conv2d(padded, horizontal, groups=c), vertical, groups=c)
        return to_uint8(out)
    return apply


def noise(sigma: float) -> Perturbation:
    """Add N(0, σ²) noise (σ on the [0, 1] scale), clip, re-quantise."""
    def apply(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        images = _float(x)
        return to_uint8(images + sigma * torch.randn(images.shape, generator=g))
    return apply


PERTURBATIONS: dict[str, Perturbation] = {
    "jpeg-90": jpeg(90), "jpeg-75": jpeg(75), "jpeg-50": jpeg(50),
    "resize-0.75": resize(0.75), "resize-0.5": resize(0.5),
    "blur-0.5": blur(0.5), "blur-1.0": blur(1.0),
    "noise-0.02": noise(0.02), "noise-0.05": noise(0.05),
}
