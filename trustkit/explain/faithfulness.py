"""Does an attribution point at what the model uses? Deletion and insertion curves (Petsiuk et al. 2018, RISE).

*Deletion* blacks out pixels in the order of the evidence map, most important first, and follows the model's
softmax probability of the explained class: a faithful map makes it fall fast, so the area under the curve
(fraction of pixels removed on x, probability on y) is small. *Insertion* starts from a blurred copy of the image
and restores the original pixels in the same order: a faithful map makes the probability rise fast, so the area
is large. The same curves for a random order are the baseline a map must beat.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trustkit.errors import InvalidArgumentError

MODES = ("deletion", "insertion")


@dataclass(frozen=True)
class Curves:
    """Mean probability of the explained class after each step (``fractions`` of pixels changed, 0 … 1) and
    every image's area under its curve (N)."""

    fractions: list[float]
    mean_probability: list[float]
    auc: torch.Tensor

    @property
    def mean_auc(self) -> float:
        return float(self.auc.mean()) if len(self.auc) else float("nan")


def blurred(x: torch.Tensor) -> torch.Tensor:
    """The insertion curve's starting point: ``x`` under a Gaussian blur of σ = side / 4 — the layout survives,
    the detail the classifier reads does not (on the 8×8 digits the trained cnn keeps about a third of its
    confidence, against three quarters at σ = side / 8)."""
    import math

    from torchvision.transforms.functional import gaussian_blur

    side = min(x.shape[-2:])
    sigma = side / 4
    kernel = min(2 * math.ceil(2 * sigma) + 1, 2 * side - 1)  # ±2σ, within reflect padding's reach
    return gaussian_blur(x, [kernel, kernel], [sigma, sigma])


def curves(model: nn.Module, x: torch.Tensor, target: torch.Tensor, maps: torch.Tensor, mode: str, *,
           steps: int = 16, batch_size: int = 256, device: torch.device | None = None) -> Curves:
    """The ``mode`` ("deletion" or "insertion") curve of evidence ``maps`` (N×H×W) for ``model``'s class
    ``target`` (N) on images ``x`` (N×C×H×W in [0, 1]), sampled at ``steps`` + 1 evenly spaced fractions.

    Pixels are ranked per image by their map value (ties in a fixed order); a pixel is all its channels.
    Deleted pixels become 0 (black); inserted pixels replace the :func:`blurred` image's."""
    if mode not in MODES:
        raise InvalidArgumentError(f"unknown faithfulness curve '{mode}'; use one of {', '.join(MODES)}")
    if steps < 1:
        raise InvalidArgumentError(f"faithfulness curves need at least 1 step, got {steps}")
    n, _, height, width = x.shape
    if maps.shape != (n, height, width):
        raise InvalidArgumentError(f"evidence maps must be N×H×W = {n}×{height}×{width}, got {tuple(maps.shape)}")
    device = device or next(iter(model.parameters()), torch.empty(0)).device
    pixels = height * width
    order = maps.reshape(n, pixels).argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(pixels).expand(n, -1).contiguous())  # rank[i, p]: place of pixel p
    rank = rank.reshape(n, 1, height, width)
    start, finish = (x, torch.zeros_like(x)) if mode == "deletion" else (blurred(x), x)
    fractions = [k / steps for k in range(steps + 1)]
    probabilities = torch.empty(n, steps + 1)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for k, fraction in enumerate(fractions):
                changed = rank < round(fraction * pixels)  # the first round(f·HW) pixels of each image's order
                images = torch.where(changed, finish, start)
                for i in range(0, n, batch_size):
                    logits = model(images[i:i + batch_size].to(device).float())
                    probs = logits.float().softmax(1).cpu()
                    probabilities[i:i + batch_size, k] = probs.gather(1, target[i:i + batch_size, None].long())[:, 0]
    finally:
        model.train(was_training)
    auc = torch.trapezoid(probabilities, dx=1.0 / steps, dim=1)
    return Curves(fractions, probabilities.mean(0).tolist(), auc)


def random_maps(n: int, height: int, width: int, seed: int) -> torch.Tensor:
    """Evidence maps that carry no evidence: uniform noise (the random-order baseline), seeded."""
    return torch.rand(n, height, width, generator=torch.Generator().manual_seed(seed))
