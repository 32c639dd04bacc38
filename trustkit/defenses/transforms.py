"""The input transforms: JPEG compression, bit-depth reduction, median smoothing, Gaussian noise."""
from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F

from trustkit.defenses.base import Defense, positive


class JPEG(Defense):
    """Re-encode each image as JPEG at ``quality`` (1-100) and decode it (Dziugaite et al. 2016; Guo et al.
    2018). Not differentiable: adaptive attacks use BPDA."""

    name = "jpeg"
    differentiable = False

    def __init__(self, quality: int = 75) -> None:
        self.quality = positive("quality", quality, int, 100)

    def params(self) -> dict[str, int]:
        return {"quality": self.quality}

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        from PIL import Image

        pixels = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        out = []
        for image in pixels:
            buffer = io.BytesIO()
            Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, "JPEG", quality=self.quality)
            decoded = np.asarray(Image.open(buffer))
            out.append(decoded[..., None] if decoded.ndim == 2 else decoded)
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(x.device, x.dtype) / 255.0


class BitDepth(Defense):
    """Round each pixel to ``bits`` bits (feature squeezing, Xu et al. 2018). Gradient zero almost
    everywhere: adaptive attacks use BPDA."""

    name = "bitdepth"
    differentiable = False

    def __init__(self, bits: int = 4) -> None:
        self.bits = positive("bits", bits, int, 8)

    def params(self) -> dict[str, int]:
        return {"bits": self.bits}

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        levels = 2**self.bits - 1
        return torch.round(x * levels) / levels


class Median(Defense):
    """``size``×``size`` median filter per channel (feature squeezing). Differentiable almost everywhere (the
    gradient flows to the selected pixel), so adaptive attacks differentiate through it."""

    name = "median"

    def __init__(self, size: int = 3) -> None:
        self.size = positive("size", size, int)
        if self.size % 2 == 0:
            from trustkit.errors import InvalidArgumentError

            raise InvalidArgumentError(f"median filter size must be odd, got {self.size}")

    def params(self) -> dict[str, int]:
        return {"size": self.size}

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        pad = self.size // 2
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect" if min(h, w) > pad else "replicate")
        patches = F.unfold(padded, self.size).view(n, c, self.size * self.size, h, w)
        return patches.median(dim=2).values


class GaussianNoise(Defense):
    """Add N(0, ``sigma``²) noise to every pixel and clip to [0, 1] (a randomised defense): adaptive attacks
    average over draws (EOT)."""

    name = "noise"
    randomized = True

    def __init__(self, sigma: float = 0.1) -> None:
        self.sigma = positive("sigma", sigma, float, 1.0)

    def params(self) -> dict[str, float]:
        return {"sigma": self.sigma}

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.sigma * torch.randn_like(x)).clamp(0, 1)
