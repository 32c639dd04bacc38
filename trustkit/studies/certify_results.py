"""What the certify study's rows mean (:mod:`trustkit.studies.certify`): certified accuracy against ℓ2 radius
(Cohen et al.'s curve) and the average certified radius per model and σ, the comparison with the published
anchor, and the checks shown in the report (certificate consistency, the radii a sample size can reach)."""
from __future__ import annotations

import math
from typing import Any, Sequence

import pandas as pd

from trustkit.certify.smoothing import ABSTAIN, max_certifiable_radius
from trustkit.data import get_spec
from trustkit.sanity import Check

RADIUS_STEP = 0.25  # the default radius grid: multiples of this up to the largest certifiable radius
MAX_DEFAULT_RADIUS = 4.0

# Jeong & Shin (NeurIPS 2020), published logs of Cohen et al.'s Gaussian training: LeNet on MNIST, full test set,
# N = 100,000, N0 = 100, α = 0.001. Certified accuracy (fraction) by σ and ℓ2 radius.
ANCHOR = {0.25: {0.0: 0.992, 0.5: 0.967},
          0.5: {0.0: 0.992, 0.5: 0.969, 1.0: 0.898, 1.5: 0.678},
          1.0: {0.0: 0.963, 0.5: 0.914, 1.0: 0.799, 1.5: 0.595, 2.0: 0.325}}
ANCHOR_SOURCE = ("Jeong & Shin 2020, Gaussian training (Cohen et al. 2019), LeNet on MNIST, full test set, "
                 "N = 100,000")

RESULT_COLUMNS = ["model", "entry", "dataset", "sigma", "radius", "certified_accuracy", "reachable", "radius_limit",
                  "acr", "abstentions", "abstention_rate", "smoothed_accuracy", "predict_abstentions",
                  "base_noise_accuracy", "base_clean_accuracy", "n_images", "n0", "n", "alpha"]
CERTIFICATE_COLUMNS = ["model", "entry", "dataset", "sigma", "index", "label", "prediction", "p_lower", "radius",
                       "correct", "predict", "noise_accuracy"]
ATTACK_COLUMNS = ["model", "entry", "dataset", "sigma", "fraction", "inside", "images", "attacked", "mean_l2",
                  "max_norm_over_radius", "changed", "abstained", "violations", "steps", "eot_samples"]


def radius_grid(radii: Sequence[float] | None, sigmas: Sequence[float], n: int, alpha: float) -> list[float]:
    """The ℓ2 radii of results.csv: ``radii`` (with 0), or steps of 0.25 up to the largest radius that N samples
    at level ``alpha`` can certify at any of ``sigmas``."""
    if radii is not None:
        return sorted({float(r) for r in radii} | {0.0})
    reach = max(max_certifiable_radius(s, n, alpha) for s in sigmas)
    top = min(reach, MAX_DEFAULT_RADIUS)
    return [round(k * RADIUS_STEP, 6) for k in range(int(math.floor(top / RADIUS_STEP + 1e-9)) + 1)]


def certified_accuracy(certificates: pd.DataFrame, radius: float) -> float:
    """Fraction of images classified correctly with a certified radius ≥ ``radius`` (Cohen et al.'s curve)."""
    if not len(certificates):
        return float("nan")
    return float((certificates["correct"].astype(bool) & (certificates["radius"] >= radius)).mean())


def curve_rows(certificates: pd.DataFrame, group: dict[str, Any], radii: list[float], *, dataset: str, n0: int,
               n: int, alpha: float) -> list[dict[str, Any]]:
    """The results rows of one (model, σ): certified accuracy at every radius and the group's summary numbers
    (``n0``, ``n``, ``alpha``: the certification's settings, recorded in each row)."""
    images = len(certificates)
    correct = certificates["correct"].astype(bool) if images else pd.Series(dtype=bool)
    acr = float((certificates["radius"] * correct).mean()) if images else float("nan")
    abstentions = int((certificates["prediction"] == ABSTAIN).sum()) if images else 0
    smoothed = float((certificates["predict"] == certificates["label"]).mean()) if images else float("nan")
    predict_abstentions = int((certificates["predict"] == ABSTAIN).sum()) if images else 0
    noise = float(certificates["noise_accuracy"].mean()) if images else float("nan")
    limit = group["radius_limit"]
    return [{"model": group["model"], "entry": group["entry"], "dataset": dataset, "sigma": group["sigma"],
             "radius": r, "certified_accuracy": certified_accuracy(certificates, r), "reachable": bool(r <= limit),
             "radius_limit": limit, "acr": acr, "abstentions": abstentions,
             "abstention_rate": abstentions / images if images else float("nan"), "smoothed_accuracy": smoothed,
             "predict_abstentions": predict_abstentions, "base_noise_accuracy": noise,
             "base_clean_accuracy": group["base_clean_accuracy"], "n_images": images, "n0": n0, "n": n,
             "alpha": alpha} for r in radii]


def anchor_rows(certificates: pd.DataFrame, *, dataset: str, n: int, alpha: float) -> list[dict[str, Any]]:
    """Our certified accuracy beside :data:`ANCHOR` at its radii (MNIST only): one row per model × σ × radius
    for every σ the anchor has, ``reachable`` False where the radius lies beyond what ``n`` samples at level
    ``alpha`` can certify."""
    if get_spec(dataset).name != "mnist":
        return []
    rows = []
    for (model, sigma), part in certificates.groupby(["model", "sigma"], sort=False):
        published = next((v for s, v in ANCHOR.items() if math.isclose(s, sigma)), None)
        if published is None:
            continue
        limit = max_certifiable_radius(sigma, n, alpha)
        for radius, value in published.items():
            ours = certified_accuracy(part, radius)
            rows.append({"model": model, "sigma": sigma, "radius": radius, "published": value, "ours": ours,
                         "difference": ours - value, "reachable": radius <= limit, "n_images": len(part)})
    return rows


def certify_checks(tables: dict[str, pd.DataFrame], *, dataset: str, sigmas: Sequence[float], n: int, alpha: float,
                   attack_n: int, radii: Sequence[float] | None) -> list[Check]:
    """The consistency check per (model, σ) and, per σ, whether ``n`` samples at level ``alpha`` reach the radii
    asked about (``radii``, or None for the default grid; and the anchor's on MNIST). ``attack_n`` 0: the
    consistency attack was not run."""
    checks = []
    attack = tables["attack.csv"]
    for (model, sigma), part in tables["results.csv"].groupby(["model", "sigma"], sort=False):
        name = f"certificate consistency: {model} σ={sigma:g}"
        rows = attack[(attack["model"] == model) & (attack["sigma"] == sigma)]
        inside, outside = rows[rows["inside"].astype(bool)], rows[~rows["inside"].astype(bool)]
        if attack_n == 0 or not len(rows):
            checks.append(Check(name, "skipped", "not run (--attack-n 0)" if attack_n == 0 else
                                "the attack cell did not finish", "certify-consistency"))
            continue
        attacked = int(rows["attacked"].max())
        if attacked == 0:
            checks.append(Check(name, "skipped", "no attacked image was certified", "certify-consistency"))
            continue
        violations = int(inside["violations"].sum())
        strength = (f"; beyond the radius ({', '.join(f'{f:g}·R' for f in outside['fraction'])}) the attack changed "
                    f"{int(outside['changed'].sum())} of {attacked * len(outside)} predictions" if len(outside) else "")
        if violations:
            checks.append(Check(name, "flag", f"{violations} certified point(s) changed their smoothed prediction "
                                f"under an ℓ2 perturbation shorter than their certified radius (PGD + EOT on the "
                                f"smoothed classifier, {attacked} images): each certificate may fail with probability "
                                f"α = {alpha:g}, more than that is a bug or a broken noise model{strength}",
                                "certify-consistency"))
        else:
            fractions = ", ".join(f"{f:g}·R" for f in inside["fraction"])
            checks.append(Check(name, "pass", f"PGD with EOT on the smoothed classifier at {fractions} changed none of "
                                f"the {attacked} certified predictions{strength}", "certify-consistency"))
    # radii the user asked for (--radius) or the anchor's; the default grid is shared by every σ and marks the
    # radii beyond one σ's reach in its rows (reachable = False) without flagging them
    grid = radius_grid(radii, sigmas, n, alpha) if radii is not None else []
    for sigma in sigmas:
        limit = max_certifiable_radius(sigma, n, alpha)
        asked = set(grid)
        if get_spec(dataset).name == "mnist":
            asked |= set(next((v for s, v in ANCHOR.items() if math.isclose(s, sigma)), {}))
        beyond = sorted(r for r in asked if r > limit)
        name = f"sample size reach: σ={sigma:g}, N={n:,}"
        if beyond:
            checks.append(Check(name, "flag", f"with N = {n:,} and α = {alpha:g} no radius above "
                                f"{limit:.3f} (σ·Φ⁻¹(α^(1/N))) can be certified at σ = {sigma:g}, so certified "
                                f"accuracy at r = {', '.join(f'{r:g}' for r in beyond)} is 0 by construction, not a "
                                f"measurement; raise --n to reach them", "certify-reach"))
        else:
            checks.append(Check(name, "pass", f"N = {n:,} certifies radii up to {limit:.3f} at σ = {sigma:g}, "
                                f"beyond every radius reported", "certify-reach"))
    return checks


__all__ = ["ANCHOR", "ANCHOR_SOURCE", "ATTACK_COLUMNS", "CERTIFICATE_COLUMNS", "MAX_DEFAULT_RADIUS", "RADIUS_STEP",
           "RESULT_COLUMNS", "anchor_rows", "certified_accuracy", "certify_checks", "curve_rows", "radius_grid"]
