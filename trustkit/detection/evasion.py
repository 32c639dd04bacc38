"""Evasion of a differentiable fake detector with the strongest white-box attacks trustkit has.

The attacker holds fakes and wants them scored "real". Per ε (ℓ∞, pixel scale [0, 1]) it runs, on the detector's
two logits (real, fake):

- ``apgd-margin``: APGD (Croce & Hein 2020), ``steps`` iterations, on the logit margin z_real − z_fake. With two
  classes, untargeted ("leave fake") and targeted ("reach real") attacks ascend the same margin, so this one run is
  both. Unlike cross-entropy, whose gradient underflows to 0 on a fake the detector is very sure of (a masked
  gradient), the margin's gradient never vanishes.
- ``apgd-ce``: APGD on cross-entropy of the label "fake" (AutoAttack's first loss), for comparison.
- ``pgd-10``: the 10-step targeted PGD trustkit used to report, for comparison.

Every attack runs all its steps (``early_stop=False``): AUC ranks fakes among real images, so the attacker
wants the most "real" score it can get, not the first point past a threshold. Published images are 8-bit, so each
result is **re-quantised**: rounded to the 8-bit grid per pixel towards the side that helps the attacker (the
gradient's sign at the float point) or to the nearest level, whichever scores lower, then clipped to the ε-ball;
since the originals and ε = k/255 lie on the grid, the published image is exactly within ε. ``strongest`` keeps,
per image, the variant with the lowest P(fake) after quantisation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from trustkit.batches import map_batches
from trustkit.detection.base import FAKE, REAL, Detector

VARIANTS = ("apgd-margin", "apgd-ce", "pgd-10")
DEFAULT_STEPS = 100


def _attack(variant: str, eps: float, steps: int):  # noqa: ANN202 - an Attack
    from trustkit.attacks import APGD, PGD

    if variant == "apgd-margin":
        return APGD(eps, steps=steps, loss="margin", early_stop=False)
    if variant == "apgd-ce":
        return APGD(eps, steps=steps, loss="ce", early_stop=False)
    if variant == "pgd-10":
        return PGD(eps, steps=10, targeted=True, early_stop=False)
    raise ValueError(f"unknown evasion variant {variant}")


def _fake_probability(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module(x).float().softmax(1)[:, FAKE]


def quantise(module: torch.nn.Module, x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """``x_adv`` (floats near ``x``, whose pixels are on the 8-bit grid) as uint8 images within ``eps`` of ``x``:
    per image the better (lower P(fake)) of nearest rounding and rounding along the margin's gradient."""
    x_adv = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = module(x_adv).float()
        gradient, = torch.autograd.grad((logits[:, 0] - logits[:, FAKE]).sum(), x_adv)  # towards "real"
    up = gradient > 0
    scaled = x_adv.detach() * 255
    directed = torch.where(up, scaled.ceil(), scaled.floor())
    low, high = (x * 255 - eps * 255).round(), (x * 255 + eps * 255).round()

    def published(levels: torch.Tensor) -> torch.Tensor:
        return torch.minimum(torch.maximum(levels, low), high).clamp(0, 255) / 255

    nearest, guided = published(scaled.round()), published(directed)
    better = _fake_probability(module, guided) < _fake_probability(module, nearest)
    chosen = torch.where(better.view(-1, *[1] * (x.ndim - 1)), guided, nearest)
    return (chosen * 255).round().to(torch.uint8)


@dataclass
class Evasion:
    """Evaded fakes (uint8) per variant and the per-image strongest, with P(fake) of each (float64 arrays)."""

    images: dict[str, torch.Tensor]
    p_fake: dict[str, np.ndarray]
    p_fake_float: dict[str, np.ndarray]


def evade_strongest(detector: Detector, fakes: torch.Tensor, eps: float, *, steps: int = DEFAULT_STEPS,
                    variants: tuple[str, ...] = VARIANTS, device: torch.device,
                    batch_size: int = 256) -> Evasion:
    """Run every variant at ``eps`` on ``fakes`` (uint8 N×C×H×W) against ``detector.module``; see the module
    docstring. ``p_fake_float`` holds P(fake) of the float results before quantisation (what an attacker who
    could publish floats would get)."""
    module = detector.module.eval()
    images, scores, floats = {}, {}, {}
    labels = torch.full((len(fakes),), FAKE)
    for variant in variants:
        if eps == 0:
            images[variant] = fakes.clone()
            scores[variant] = detector.score(fakes, device=device)
            floats[variant] = scores[variant]
            continue
        attack = _attack(variant, eps, steps)
        collected: list[torch.Tensor] = []

        def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            x = x.float() / 255.0
            # untargeted attacks leave the label "fake"; targeted PGD is told its target, "real"
            x_adv = attack(module, x, torch.full_like(y, REAL) if attack.targeted else y)
            collected.append(_fake_probability(module, x_adv).cpu())
            return quantise(module, x_adv, x, eps)

        images[variant] = map_batches(run, fakes, labels, batch_size=batch_size, device=device,
                                      empty=fakes.clone())
        floats[variant] = torch.cat(collected).double().numpy() if collected else np.zeros(0)
        scores[variant] = detector.score(images[variant], device=device)
    stacked = np.stack([scores[v] for v in variants])
    pick = stacked.argmin(0)
    strongest = torch.stack([images[variants[k]][i] for i, k in enumerate(pick.tolist())]) if len(fakes) else fakes
    images["strongest"], scores["strongest"] = strongest, stacked.min(0)
    floats["strongest"] = np.stack([floats[v] for v in variants]).min(0)
    return Evasion(images, scores, floats)


def flip_budgets(detector: Detector, fakes: torch.Tensor, threshold: float, grid: tuple[float, ...], *,
                 steps: int = DEFAULT_STEPS, device: torch.device) -> np.ndarray:
    """Per fake, the smallest ε of ``grid`` (ℓ∞) at which APGD-margin (quantised) brings P(fake) below
    ``threshold`` (the detector's calibrated operating point); ``inf`` when none does. A measure of how far the
    fakes sit from the detector's "real" side."""
    needed = np.full(len(fakes), math.inf)
    left = np.arange(len(fakes))
    for eps in sorted(grid):
        if not len(left):
            break
        done = evade_strongest(detector, fakes[left], eps, steps=steps, variants=("apgd-margin",), device=device)
        flipped = done.p_fake["apgd-margin"] < threshold
        needed[left[flipped]] = eps
        left = left[~flipped]
    return needed
