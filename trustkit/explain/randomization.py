"""The model-parameter randomisation test (Adebayo et al. 2018, "Sanity checks for saliency maps").

An explanation of *this model* must change when the model's weights are destroyed. The cascading test
re-initialises the weights layer by layer from the logits down to the input and, after each step, compares the
new evidence maps with the trained model's by Spearman rank correlation (per image, then averaged). A method
whose maps stay similar after every layer is randomised — an edge detector, or a map dominated by the input
itself — explains the image, not the model, and is flagged.

Deep models are randomised in at most ``max_steps`` consecutive blocks of layers (top first), so the test costs
at most that many extra attribution passes per method.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from trustkit.models.features import LayerInfo, describe_layers

# A method that fails keeps maps this similar (mean Spearman ρ) to the trained model's after the whole cascade.
FLAG_RANK_CORRELATION = 0.5


@dataclass(frozen=True)
class RandomizationStep:
    """One step of the cascade: the layers re-initialised so far (top down, ``layers`` the newest block) and
    the rank correlation of the maps with the trained model's (mean and standard deviation over images);
    ``maps`` are the first images' maps after this step, for the report's strip."""

    step: int
    layers: str
    rank_correlation: float
    rank_correlation_std: float
    maps: torch.Tensor


def parameter_layers(model: nn.Module, input_shape: tuple[int, ...]) -> list[LayerInfo]:
    """The leaf layers with weights (convolutions, linear layers, norms), in execution order."""
    modules = dict(model.named_modules())
    return [layer for layer in describe_layers(model, input_shape)
            if any(True for _ in modules[layer.name].parameters(recurse=False))]


def cascade_blocks(layers: list[LayerInfo], max_steps: int = 8) -> list[list[LayerInfo]]:
    """The layers from the top (logits) down, cut into at most ``max_steps`` consecutive blocks."""
    top_down = list(reversed(layers))
    steps = max(1, min(max_steps, len(top_down)))
    size, extra = divmod(len(top_down), steps)
    blocks, start = [], 0
    for i in range(steps):
        end = start + size + (1 if i < extra else 0)
        blocks.append(top_down[start:end])
        start = end
    return [b for b in blocks if b]


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each pair of maps ``a[i]``, ``b[i]`` (N×H×W) with SciPy; a constant map
    (no ranking at all) counts as 0."""
    import numpy as np
    from scipy.stats import spearmanr

    values = []
    for left, right in zip(a.flatten(1).numpy(), b.flatten(1).numpy(), strict=True):
        if np.ptp(left) == 0 or np.ptp(right) == 0:
            values.append(0.0)
            continue
        values.append(float(spearmanr(left, right).statistic))
    return torch.tensor(values)


def _reinitialise(module: nn.Module, seed: int) -> None:
    torch.manual_seed(seed)
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()
    else:  # a custom layer: draw its weights afresh around the same scale
        for p in module.parameters(recurse=False):
            with torch.no_grad():
                p.normal_(0, float(p.std()) if p.numel() > 1 else 1.0)
    for name in ("running_mean", "running_var"):  # batch norm statistics belong to the trained model too
        if isinstance(getattr(module, name, None), torch.Tensor):
            getattr(module, name).fill_(0.0 if name == "running_mean" else 1.0)


def cascading_randomization(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                            maps_of: Callable[[nn.Module], torch.Tensor], *, seed: int = 0, max_steps: int = 8,
                            keep: int = 4) -> list[RandomizationStep]:
    """Run the cascade on a copy of ``model`` (the original is untouched). ``maps_of(model)`` returns the
    evidence maps (N×H×W) of images ``x`` for classes ``target`` under the given model — the method under test,
    fixed on the same images and targets throughout. Step 0 is the trained model (ρ = 1)."""
    reference = maps_of(model)
    randomised = copy.deepcopy(model).eval()
    modules = dict(randomised.named_modules())
    steps = [RandomizationStep(0, "none (trained model)", 1.0, 0.0, reference[:keep].clone())]
    blocks = cascade_blocks(parameter_layers(randomised, tuple(x.shape[1:])), max_steps)
    for index, block in enumerate(blocks, start=1):
        for offset, layer in enumerate(block):
            _reinitialise(modules[layer.name], seed * 1000 + index * 100 + offset)
        maps = maps_of(randomised)
        rho = spearman(reference, maps)
        label = block[0].alias if len(block) == 1 else f"{block[0].alias} … {block[-1].alias}"
        steps.append(RandomizationStep(index, label, float(rho.mean()), float(rho.std()) if len(rho) > 1 else 0.0,
                                       maps[:keep].clone()))
    return steps


def fails_randomization(steps: list[RandomizationStep]) -> bool:
    """True when the maps still correlate with the trained model's (ρ ≥ :data:`FLAG_RANK_CORRELATION`) once
    every layer is randomised: the method does not depend on what the model learned."""
    return len(steps) > 1 and steps[-1].rank_correlation >= FLAG_RANK_CORRELATION
