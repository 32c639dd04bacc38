"""The image priors of class-score maximisation (:mod:`trustkit.explain.visualize`): Simonyan et al.'s L2 decay
towards a centre image, Yosinski et al.'s periodic Gaussian blur, and Mahendran & Vedaldi's TV_β prior (the seed
deck's; :func:`trustkit.images.total_variation`)."""
from __future__ import annotations

import math
from typing import Sequence

import torch

from trustkit.errors import InvalidArgumentError, ShapeMismatchError
from trustkit.images import total_variation

Center = float | Sequence[float] | torch.Tensor
"""What the L2 decay pulls towards: one pixel value, one per channel, or a C×H×W image (all in [0, 1])."""


def centre_image(center: Center, shape: Sequence[int]) -> torch.Tensor:
    """``center`` as a 1×C×H×W float tensor: one value, one per channel, or a C×H×W (mean) image."""
    value = torch.as_tensor(center, dtype=torch.float32).detach().cpu()
    channels = shape[0]
    if value.dim() == 0:
        value = value.reshape(1, 1, 1, 1)
    elif value.dim() == 1 and value.numel() in (1, channels):
        value = value.reshape(1, -1, 1, 1)
    elif value.dim() == 3 and tuple(value.shape) == tuple(shape):
        value = value.unsqueeze(0)
    else:
        raise ShapeMismatchError(f"l2_center has shape {tuple(value.shape)} for {tuple(shape)} images; pass one "
                                 "value, one per channel, or a C×H×W image")
    if not torch.isfinite(value).all():
        raise InvalidArgumentError("l2_center holds NaN or infinite values; pass pixel values in [0, 1]")
    return value.expand(1, *shape).clamp(0, 1)


def l2_penalty(x: torch.Tensor, center: Center = 0.5) -> torch.Tensor:
    """Per-image mean of (x − center)² (pixel²) for images N×C×H×W: Simonyan's λ‖x − x̄‖² decay towards
    ``center`` (one value, one per channel, or a C×H×W image such as the data set's mean image)."""
    return (x - centre_image(center, x.shape[1:]).to(x.device, x.dtype)).pow(2).flatten(1).mean(1)


def _blur_kernel(sigma: float, height: int, width: int) -> int:
    # ±3σ covers 99.7% of the Gaussian; reflect padding needs the half-width below the image side
    size = 2 * math.ceil(3 * sigma) + 1
    limit = 2 * min(height, width) - 1
    return max(1, min(size, limit if limit % 2 else limit - 1))


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``x`` (N×C×H×W) blurred by a Gaussian of standard deviation ``sigma`` pixels (reflect padding)."""
    from torchvision.transforms.functional import gaussian_blur as blur

    size = _blur_kernel(sigma, x.shape[-2], x.shape[-1])
    return x if size == 1 else blur(x, [size, size], [sigma, sigma])


__all__ = ["Center", "centre_image", "gaussian_blur", "l2_penalty", "total_variation"]
