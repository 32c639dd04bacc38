"""Certified robustness: randomized smoothing (Cohen et al. 2019) — the smoothed classifier, PREDICT, CERTIFY,
the radius limit of a sample size, and the attack on the smoothed classifier that checks the certificates."""
from __future__ import annotations

from trustkit.certify.smoothing import (ABSTAIN, Certificate, Smoothed, lower_confidence_bound,
                                        max_certifiable_radius, predict_from_counts, radius_from_bound,
                                        smooth_adversarial)

__all__ = ["ABSTAIN", "Certificate", "Smoothed", "lower_confidence_bound", "max_certifiable_radius",
           "predict_from_counts", "radius_from_bound", "smooth_adversarial"]
