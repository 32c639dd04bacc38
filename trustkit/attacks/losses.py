"""Per-sample attack objectives on logits: cross-entropy, the CW margin, DLR and targeted DLR (Croce & Hein 2020).

Each returns a vector N of losses that the attacker *ascends* (targeted ones are already signed so).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the true label (untargeted: ascend to leave the class)."""
    return F.cross_entropy(logits, y, reduction="none")


def targeted_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Negative cross-entropy of the target label (ascend to reach the target)."""
    return -F.cross_entropy(logits, target, reduction="none")


def dlr(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference of Logits Ratio: -(z_y - max_{i≠y} z_i) / (z_π1 - z_π3); shift- and scale-invariant."""
    ordered, order = logits.sort(dim=1)
    true_is_top = (order[:, -1] == y).to(logits.dtype)
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    best_other = ordered[:, -2] * true_is_top + ordered[:, -1] * (1 - true_is_top)
    return -(z_y - best_other) / (ordered[:, -1] - ordered[:, -3] + 1e-12)


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Carlini-Wagner margin max_{i≠y} z_i − z_y (untargeted: ascend past 0 to leave the class). Unlike
    cross-entropy its gradient never vanishes on a confidently classified sample, and unlike DLR it needs only
    two classes (a real/fake detector)."""
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    return others.max(dim=1).values - z_y


def dlr_targeted(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Targeted DLR: -(z_y - z_t) / (z_π1 - (z_π3 + z_π4) / 2); needs at least 4 classes."""
    ordered = logits.sort(dim=1).values
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    z_t = logits.gather(1, target[:, None]).squeeze(1)
    return -(z_y - z_t) / (ordered[:, -1] - 0.5 * (ordered[:, -3] + ordered[:, -4]) + 1e-12)


def fooled(logits: torch.Tensor, y: torch.Tensor, targeted: bool = False) -> torch.Tensor:
    """Bool per sample: the attack succeeded (prediction left ``y``, or reached target ``y`` if targeted)."""
    predicted = logits.argmax(1)
    return predicted == y if targeted else predicted != y
