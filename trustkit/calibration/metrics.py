"""Calibration metrics of a classifier's probabilities: reliability bins, ECE, MCE, NLL and the Brier score.

A classifier is *calibrated* when, among the inputs it answers with confidence p, a fraction p is right
(Guo et al., "On Calibration of Modern Neural Networks", ICML 2017). Confidence is the probability of the
predicted class (the largest softmax output), correctness is whether that class is the true one.

Bins are equal-width on [0, 1]: bin m of M holds confidences in ((m − 1)/M, m/M] (the first bin also holds 0),
the convention of Guo et al. and of scikit-learn's ``calibration_curve(strategy="uniform")``, whose edges
(``np.linspace(0, 1, M + 1)``) and bin assignment (``np.searchsorted`` on the inner edges) are used here, so
the two agree exactly. scikit-learn has no ECE and its curve drops empty bins and counts, so the bins are
counted here; NLL and Brier come from scikit-learn (``log_loss``, ``brier_score_loss``).

All numbers are fractions (confidence, accuracy, ECE, MCE in [0, 1]), NLL in nats per image, Brier in [0, 2].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_BINS = 15  # Guo et al. 2017
ECE_FLAG = 0.05  # flag a condition whose ECE is above this (and above its sampling floor); see docs/calibration.md
OVERCONFIDENT_WRONG = 0.8  # flag a model whose wrong answers under attack average at least this confidence
FLOOR_DRAWS = 200  # simulated perfectly calibrated draws behind the ECE sampling floor
FLOOR_QUANTILE = 0.95


@dataclass(frozen=True)
class Reliability:
    """Equal-width confidence bins: ``edges`` (M + 1 values), per bin the ``count`` of samples, their
    ``mean_confidence`` and ``accuracy`` (fractions; NaN for an empty bin)."""

    edges: np.ndarray
    count: np.ndarray
    mean_confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def gap(self) -> np.ndarray:
        """Mean confidence − accuracy per bin (> 0: overconfident; NaN for an empty bin)."""
        return self.mean_confidence - self.accuracy


def _as_arrays(confidences: object, correct: object) -> tuple[np.ndarray, np.ndarray]:
    conf = np.asarray(confidences, dtype=np.float64).reshape(-1)
    hit = np.asarray(correct, dtype=np.float64).reshape(-1)
    if conf.shape != hit.shape:
        raise ValueError(f"one correctness per confidence, got {conf.shape} and {hit.shape}")
    if conf.size and (not np.isfinite(conf).all() or conf.min() < 0 or conf.max() > 1):
        raise ValueError("confidences must be finite fractions in [0, 1]")
    return conf, hit


def bin_index(confidences: np.ndarray, bins: int) -> np.ndarray:
    """The bin (0 … bins − 1) of each confidence: ((m − 1)/M, m/M], as scikit-learn's calibration_curve."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.searchsorted(edges[1:-1], confidences)


def reliability(confidences: object, correct: object, bins: int = DEFAULT_BINS) -> Reliability:
    """Per equal-width confidence bin: how many samples, their mean confidence and their accuracy."""
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    conf, hit = _as_arrays(confidences, correct)
    index = bin_index(conf, bins)
    count = np.bincount(index, minlength=bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weights=conf, minlength=bins) / count
        accuracy = np.bincount(index, weights=hit, minlength=bins) / count
    return Reliability(np.linspace(0.0, 1.0, bins + 1), count, mean_confidence, accuracy)


def expected_calibration_error(confidences: object, correct: object, bins: int = DEFAULT_BINS) -> float:
    """ECE = Σ_m (|B_m| / n) · |acc(B_m) − conf(B_m)| over equal-width bins (Guo et al. 2017), a fraction."""
    table = reliability(confidences, correct, bins)
    n = table.count.sum()
    if n == 0:
        return float("nan")
    filled = table.count > 0
    return float((table.count[filled] / n * np.abs(table.gap[filled])).sum())


def maximum_calibration_error(confidences: object, correct: object, bins: int = DEFAULT_BINS) -> float:
    """MCE = max over non-empty bins of |acc(B_m) − conf(B_m)| (Guo et al. 2017), a fraction."""
    table = reliability(confidences, correct, bins)
    filled = table.count > 0
    return float(np.abs(table.gap[filled]).max()) if filled.any() else float("nan")


def ece_sampling_floor(confidences: object, bins: int = DEFAULT_BINS, *, draws: int = FLOOR_DRAWS,
                       quantile: float = FLOOR_QUANTILE, seed: int = 0) -> float:
    """The ``quantile`` of the ECE a *perfectly calibrated* model would show with these confidences: each
    sample drawn correct with probability equal to its confidence, ``draws`` times (seeded). ECE is biased
    upwards on small samples (an empty-ish bin's accuracy is noisy); a measured ECE below this floor is
    indistinguishable from perfect calibration."""
    conf, _ = _as_arrays(confidences, np.zeros(np.size(confidences)))
    if conf.size == 0:
        return float("nan")
    rng = np.random.default_rng(seed)
    found = [expected_calibration_error(conf, rng.random(conf.size) < conf, bins) for _ in range(draws)]
    return float(np.quantile(found, quantile))


def _probabilities(probabilities: object, labels: object) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels).reshape(-1).astype(np.int64)
    if p.ndim != 2 or len(p) != len(y):
        raise ValueError(f"probabilities must be N×K with one label each, got {p.shape} and {y.shape}")
    return p, y


def negative_log_likelihood(probabilities: object, labels: object) -> float:
    """Mean −log p(true class) in nats (scikit-learn's ``log_loss``; probabilities clipped at float64's
    machine epsilon, so one image adds at most ~36 nats)."""
    from sklearn.metrics import log_loss

    p, y = _probabilities(probabilities, labels)
    return float(log_loss(y, p, labels=np.arange(p.shape[1])))


def brier_score(probabilities: object, labels: object) -> float:
    """Multi-class Brier score, mean over images of Σ_k (p_k − 1[y = k])², in [0, 2] (scikit-learn's
    ``brier_score_loss`` unscaled, the same formula for two classes as for ten)."""
    from sklearn.metrics import brier_score_loss

    p, y = _probabilities(probabilities, labels)
    return float(brier_score_loss(y, p, labels=np.arange(p.shape[1]), scale_by_half=False))


def softmax(logits: object) -> np.ndarray:
    """Row-wise softmax in float64 (logits N×K)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def calibration_summary(probabilities: object, labels: object, bins: int = DEFAULT_BINS,
                        seed: int = 0) -> dict[str, float | int]:
    """Every number of one results row from class probabilities N×K and true labels: accuracy, ECE (and its
    sampling floor), MCE, NLL, Brier, mean confidence (overall, of correct and of wrong predictions), n."""
    p, y = _probabilities(probabilities, labels)
    confidence, predicted = p.max(axis=1), p.argmax(axis=1)
    correct = predicted == y
    n = len(y)

    def mean(values: np.ndarray) -> float:
        return float(values.mean()) if values.size else float("nan")

    return {"n": n, "accuracy": mean(correct.astype(np.float64)),
            "ece": expected_calibration_error(confidence, correct, bins),
            "ece_floor": ece_sampling_floor(confidence, bins, seed=seed),
            "mce": maximum_calibration_error(confidence, correct, bins),
            "nll": negative_log_likelihood(p, y) if n else float("nan"),
            "brier": brier_score(p, y) if n else float("nan"),
            "mean_confidence": mean(confidence), "mean_confidence_correct": mean(confidence[correct]),
            "mean_confidence_wrong": mean(confidence[~correct])}
