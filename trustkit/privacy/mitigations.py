"""Split-layer mitigations and their privacy/utility curve.

A split-inference deployment can damage the features before they leave the device. Three transforms, each
with a strength knob:

- ``noise:σ`` — add Gaussian noise with standard deviation σ × (std of the clean features on auxiliary data);
- ``dropout:p`` — zero each feature value with probability p and scale the rest by 1/(1−p) (inverted dropout,
  so the expected value the rest of the network sees is unchanged);
- ``quant:b`` — uniform quantisation to 2^b levels between the 0.1st and 99.9th percentile of the clean
  features (values outside are clipped).

Utility is the accuracy of the *unchanged* rest of the network on the transformed features (test split).
Privacy is measured by running the inversion attacks against the transformed features: the white-box attacker
matches them with the clean Φ; the inverse network is adaptive (trained on transformed auxiliary features).
Randomness is seeded per transform, so a curve is reproducible.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from trustkit.errors import InvalidArgumentError
from trustkit.models.inference import accuracy
from trustkit.models.features import FeatureExtractor, LayerInfo, frozen, transformed_layer

KINDS = ("noise", "dropout", "quant")
DEFAULT_MITIGATIONS = ("noise:0.5", "noise:2", "dropout:0.5", "quant:2")


@dataclass(frozen=True)
class Mitigation:
    """One transform of the split layer's output: ``kind`` (noise, dropout, quant) and its ``strength``
    (σ as a multiple of the feature std; drop probability; bits)."""

    kind: str
    strength: float

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.strength:g}"


def parse_mitigation(text: str) -> Mitigation:
    """``noise:0.5`` / ``dropout:0.5`` / ``quant:4`` -> :class:`Mitigation`; one-line errors otherwise."""
    kind, _, value = text.strip().lower().partition(":")
    if kind not in KINDS or not value:
        raise InvalidArgumentError(f"unknown mitigation '{text}'; use noise:SIGMA, dropout:P or quant:BITS, e.g. "
                                   "noise:0.5,dropout:0.5,quant:2")
    try:
        strength = float(value)
    except ValueError:
        raise InvalidArgumentError(f"mitigation '{text}' needs a number after ':'") from None
    if kind == "noise" and not strength >= 0:
        raise InvalidArgumentError(f"noise σ must be >= 0, got {value}")
    if kind == "dropout" and not 0 <= strength < 1:
        raise InvalidArgumentError(f"dropout probability must lie in [0, 1), got {value}")
    if kind == "quant" and (strength != int(strength) or not 1 <= strength <= 16):
        raise InvalidArgumentError(f"quantisation needs a whole number of bits in 1..16, got {value}")
    return Mitigation(kind, strength)


@dataclass
class FeatureStats:
    """Statistics of the clean features at one layer on auxiliary data: std and the 0.1/99.9 percentiles."""

    std: float
    low: float
    high: float


@torch.no_grad()
def feature_stats(model: nn.Module, layer: LayerInfo, images: torch.Tensor, device: torch.device,
                  max_images: int = 1024) -> FeatureStats:
    """:class:`FeatureStats` of ``layer`` on up to ``max_images`` auxiliary images."""
    with frozen(model):
        features = FeatureExtractor(model, layer)(images[:max_images].to(device)).float().flatten().cpu()
    if features.numel() > 2_000_000:  # quantile() refuses very large tensors; a strided sample is plenty
        features = features[:: features.numel() // 2_000_000 + 1]
    return FeatureStats(float(features.std()), float(features.quantile(0.001)), float(features.quantile(0.999)))


def make_transform(mitigation: Mitigation, stats: FeatureStats, seed: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """The feature transform of ``mitigation`` (seeded noise / masks drawn on the CPU, so results do not depend
    on the device)."""
    generator = torch.Generator().manual_seed(seed)
    kind, strength = mitigation.kind, mitigation.strength

    def draw(shape: torch.Size) -> torch.Tensor:
        return torch.rand(shape, generator=generator) if kind == "dropout" else torch.randn(shape, generator=generator)

    def transform(features: torch.Tensor) -> torch.Tensor:
        if kind == "noise":
            return features + strength * stats.std * draw(features.shape).to(features.device, features.dtype)
        if kind == "dropout":
            keep = (draw(features.shape) >= strength).to(features.device, features.dtype)
            return features * keep / (1 - strength)
        levels = 2 ** int(strength) - 1
        span = max(stats.high - stats.low, 1e-12)
        unit = ((features - stats.low) / span).clamp(0, 1)
        quantised = torch.round(unit * levels) / levels
        # straight-through gradient: the white-box attacker differentiates as if the rounding were the identity
        unit = unit + (quantised - unit).detach()
        return unit * span + stats.low

    return transform


@torch.no_grad()
def utility(model: nn.Module, layer: LayerInfo, transform: Callable[[torch.Tensor], torch.Tensor] | None,
            images: torch.Tensor, labels: torch.Tensor, device: torch.device, batch_size: int = 256) -> float:
    """Accuracy (fraction) of ``model`` on ``images`` when ``layer``'s output is replaced by ``transform(output)``."""
    with frozen(model):
        if transform is None:
            return accuracy(model, images, labels, batch_size=batch_size, device=device)
        with transformed_layer(model, layer, transform):
            return accuracy(model, images, labels, batch_size=batch_size, device=device)
