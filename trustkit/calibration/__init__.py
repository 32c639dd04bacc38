"""Calibration (are the model's confidences right?) and out-of-distribution detection (does its confidence drop
on images of another kind?): the metrics behind ``trustkit bench calibration`` (trustkit.studies.calibration)."""
from __future__ import annotations

from trustkit.calibration.metrics import (DEFAULT_BINS, ECE_FLAG, OVERCONFIDENT_WRONG, Reliability, brier_score,
                                          calibration_summary, ece_sampling_floor, expected_calibration_error,
                                          maximum_calibration_error, negative_log_likelihood, reliability, softmax)
from trustkit.calibration.ood import (AUROC_FLAG, NOISE, OOD_SCORES, conversion_note, convert_images, energy,
                                      fpr_at_tpr, max_softmax, noise_images, ood_metrics, roc_points)

__all__ = ["AUROC_FLAG", "DEFAULT_BINS", "ECE_FLAG", "NOISE", "OOD_SCORES", "OVERCONFIDENT_WRONG", "Reliability",
           "brier_score", "calibration_summary", "conversion_note", "convert_images", "ece_sampling_floor", "energy",
           "expected_calibration_error", "fpr_at_tpr", "max_softmax", "maximum_calibration_error",
           "negative_log_likelihood", "noise_images", "ood_metrics", "reliability", "roc_points", "softmax"]
