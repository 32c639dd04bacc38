"""RMIA, the relative membership attack (Zarifzadeh, Liu, Mittal & Shokri 2024, "Low-Cost High-Power Membership
Inference Attacks"), from reference-model probabilities.

For a candidate x and a population image z (never trained on by the target), the likelihood ratio

    LR(x, z) = [Pr(x | θ) / Pr(x)] / [Pr(z | θ) / Pr(z)]

compares how much more the target θ likes x than the average reference model does, relative to the same ratio
for z. Pr(· | θ) is the model's softmax probability of the true label; Pr(x) is its average over the reference
models (online: all of them, trained with and without x). The score is the fraction of population images that x
dominates, Pr_z[LR(x, z) ≥ γ] (γ = 1 by default). With several queries per image (augmented views) the fraction is
computed per view and averaged. Higher scores mean "more likely a member".
"""
from __future__ import annotations

import numpy as np

from trustkit.errors import InvalidArgumentError

DEFAULT_GAMMA = 1.0


def probability_from_scaled_logit(phi: np.ndarray) -> np.ndarray:
    """p_y from φ = log(p_y / (1 − p_y)): the logistic function, float64."""
    return 1.0 / (1.0 + np.exp(-np.asarray(phi, dtype=np.float64)))


def _views(array: np.ndarray, dims: int) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    return array[..., None] if array.ndim == dims else array


def rmia_scores(target_x: np.ndarray, reference_x: np.ndarray, target_z: np.ndarray, reference_z: np.ndarray, *,
                gamma: float = DEFAULT_GAMMA) -> np.ndarray:
    """RMIA scores (N, fractions in [0, 1]) of the candidates.

    ``target_x``: Pr(x | θ) of the N candidates under the target (N or N×Q views); ``reference_x``: the same under
    the K reference models (K×N or K×N×Q); ``target_z`` / ``reference_z``: the same for the Z population images
    (Z or Z×Q, K×Z or K×Z×Q). Probabilities, not logits."""
    px, pz = _views(target_x, 1), _views(target_z, 1)
    rx, rz = _views(reference_x, 2), _views(reference_z, 2)
    if rx.shape[1:] != px.shape or rz.shape[1:] != pz.shape or len(rx) != len(rz) or px.shape[1] != pz.shape[1]:
        raise InvalidArgumentError(f"RMIA needs matching shapes (target N×Q, references K×N×Q, population Z×Q, "
                                   f"K×Z×Q); got {px.shape}, {rx.shape}, {pz.shape}, {rz.shape}")
    if len(rx) < 1 or len(pz) < 1:
        raise InvalidArgumentError("RMIA needs at least one reference model and one population image")
    if not gamma > 0:
        raise InvalidArgumentError(f"RMIA's gamma must be > 0, got {gamma}")
    ratio_x = px / np.maximum(rx.mean(0), 1e-300)
    ratio_z = pz / np.maximum(rz.mean(0), 1e-300)
    scores = np.empty(px.shape)
    for q in range(px.shape[1]):
        ordered = np.sort(ratio_z[:, q])
        # LR(x, z) >= gamma  <=>  ratio_z <= ratio_x / gamma: count such z by binary search
        scores[:, q] = np.searchsorted(ordered, ratio_x[:, q] / gamma, side="right") / len(ordered)
    return scores.mean(1)
