"""Fake-detection measurements: train (or reuse) a detector, score it across generators and degradations, evade it.

The study that runs these as cells is :mod:`trustkit.studies.fakes`; its report is :mod:`trustkit.report.detection_report`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trustkit.attacks import parse_eps
from trustkit.detection import DETECTORS, Detector, make_detector
from trustkit.detection.data import DEFAULT_GENERATORS, FakeImageSet
from trustkit.detection.evaluate import calibrate_threshold, evade, roc_points, score_quality
from trustkit.detection.perturb import PERTURBATIONS
from trustkit.errors import CheckpointError, InvalidArgumentError
from trustkit.models.store import checkpoint_exists, entry_lock, read_checkpoint, save_tensors, store_path
from trustkit.runtime import seed_everything, select_device

DEFAULT_EPS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)
RESULT_COLUMNS = ["dataset", "kind", "detector", "train_generator", "test_generator", "condition", "eps", "auc",
                  "ap", "accuracy", "threshold", "n_real", "n_fake", "seconds"]


@dataclass
class FakesConfig:
    """One fake-detection study: generators × detectors on a data set (sizes are images per class and split)."""

    dataset: str = "faces"
    generators: list[str] = field(default_factory=lambda: list(DEFAULT_GENERATORS))
    detectors: list[str] = field(default_factory=lambda: list(DETECTORS.names()))
    n_train: int = 2000
    n_val: int = 500
    n_test: int = 1000
    seed: int = 0
    eps: list[float] = field(default_factory=lambda: list(DEFAULT_EPS))
    attack_steps: int = 10
    perturbations: list[str] = field(default_factory=lambda: list(PERTURBATIONS))
    device: str = "auto"
    data_root: str | None = None
    out: str = "reports"
    use_cache: bool = True
    jobs: int = 1
    backend: str = "local"
    ray_address: str | None = None

    def validate(self) -> "FakesConfig":
        self.detectors = [DETECTORS.canonical(d) for d in self.detectors]
        unknown = [p for p in self.perturbations if p not in PERTURBATIONS]
        if unknown:
            raise InvalidArgumentError(f"unknown degradation {', '.join(unknown)}; choose from {', '.join(PERTURBATIONS)}")
        self.eps = sorted({parse_eps(e) for e in self.eps})
        if any(e > 1 for e in self.eps):
            raise InvalidArgumentError("evasion eps must be at most 1 (linf, pixel scale [0, 1]), e.g. 2/255")
        if self.attack_steps < 1:
            raise InvalidArgumentError(f"--attack-steps must be at least 1, got {self.attack_steps}")
        select_device(self.device)
        return self


@dataclass
class TrainedDetector:
    detector: Detector
    threshold: float
    validation: dict[str, float]
    cached: bool


def detector_entry(name: str, dataset: str, generator: str) -> str:
    """Store entry of a detector trained on real images and fakes of ``generator``: ``det-cnn-faces-dcgan``."""
    return f"det-{name}-{dataset}-{generator}"


def train_detector(name: str, images: FakeImageSet, generator: str, *, seed: int = 0,
                   device: torch.device | None = None, use_cache: bool = True, run_token: str = "") -> TrainedDetector:
    """Detector ``name`` trained on real vs ``generator`` fakes (threshold calibrated on the validation split),
    loaded from the store when it holds one fitted on exactly this data and seed — with ``use_cache`` False,
    only one this run trained (``run_token``). Training happens under the entry's lock: two cells or processes
    that need the same detector train it once."""
    path = store_path(detector_entry(name, images.dataset, generator))
    with entry_lock(path, waiting=f"another trustkit process is training detector {name} on {generator}; waiting"):
        stored = _stored_detector(name, images, generator, path, seed, use_cache, run_token)
        if stored is not None:
            return stored
        detector = make_detector(name, images.dataset)
        seed_everything(seed)
        x, y = images.pair("train", generator)
        detector.fit(x, y, seed=seed, device=device)
        x_val, y_val = images.pair("val", generator)
        val_scores = detector.score(x_val, device=device)
        threshold = calibrate_threshold(val_scores, y_val.numpy())
        validation = score_quality(val_scores, y_val.numpy(), threshold).as_dict()
        save_tensors(detector.state(), {"kind": "detector", "detector": name, "dataset": images.dataset,
                                        "generator": generator, "data_key": images.key, "seed": seed,
                                        "options": detector.options(), "threshold": threshold,
                                        "validation": validation, "run": run_token}, path)
        return TrainedDetector(detector, threshold, validation, False)


def _stored_detector(name: str, images: FakeImageSet, generator: str, path: Path, seed: int, use_cache: bool,
                     run_token: str) -> TrainedDetector | None:
    if not checkpoint_exists(path):
        return None
    try:
        weights, meta = read_checkpoint(path)  # one open: weights and metadata of the same version
    except CheckpointError:
        return None  # unreadable: retrain and overwrite
    detector = make_detector(name, images.dataset)
    fresh = use_cache or (run_token and meta.get("run") == run_token)
    if not (fresh and meta.get("data_key") == images.key and meta.get("seed") == seed
            and meta.get("options") == detector.options()):
        return None
    detector.load_state(weights)
    return TrainedDetector(detector, meta["threshold"], meta["validation"], True)


def result_row(config: FakesConfig, kind: str, detector: str, train: str, test: str, condition: str, eps: float,
               scores: np.ndarray, labels: np.ndarray, threshold: float, seconds: float) -> dict[str, Any]:
    """One row of results.csv: AUC, AP and accuracy at the calibrated threshold of ``scores``."""
    quality = score_quality(scores, labels, threshold)
    return {"dataset": config.dataset, "kind": kind, "detector": detector, "train_generator": train,
            "test_generator": test, "condition": condition, "eps": eps, **quality.as_dict(),
            "n_real": int((labels == 0).sum()), "n_fake": int((labels == 1).sum()), "seconds": seconds}


def measure_detector(config: FakesConfig, images: FakeImageSet, name: str, generator: str,
                     trained: TrainedDetector, device: torch.device) -> dict[str, Any]:
    """Rows of one detector trained on ``generator``: clean scores on every generator's test fakes
    (cross-generator; the diagonal is in-distribution) and on each degradation of its own generator's test
    set; plus its in-distribution ROC curve (false- and true-positive rates)."""
    rows, roc = [], ([], [])
    for test_generator in images.generators:
        x, y = images.pair("test", test_generator)
        tic = time.perf_counter()
        scores = trained.detector.score(x, device=device)
        rows.append(result_row(config, "cross-generator", name, generator, test_generator, "clean", 0.0, scores,
                               y.numpy(), trained.threshold, time.perf_counter() - tic))
        if test_generator == generator:
            roc = tuple(points.tolist() for points in roc_points(scores, y.numpy()))
    x, y = images.pair("test", generator)
    for condition in config.perturbations:
        degraded = PERTURBATIONS[condition](x, torch.Generator().manual_seed(config.seed))
        tic = time.perf_counter()
        scores = trained.detector.score(degraded, device=device)
        rows.append(result_row(config, "degradation", name, generator, generator, condition, 0.0, scores,
                               y.numpy(), trained.threshold, time.perf_counter() - tic))
    return {"rows": rows, "roc": list(roc)}


def measure_evasion(config: FakesConfig, images: FakeImageSet, attacker: str, generator: str, eps: float,
                    trained: dict[str, TrainedDetector], device: torch.device) -> list[dict[str, Any]]:
    """PGD at ``eps`` (linf) on ``generator``'s test fakes against detector ``attacker``, then every detector
    of ``trained`` (by name, all trained on ``generator``) scores real + evaded fakes: white-box for the
    attacked detector, transfer for the others."""
    x, y = images.pair("test", generator)
    real, fakes = x[y == 0], x[y == 1]
    seed_everything(config.seed)
    tic = time.perf_counter()
    evaded = evade(trained[attacker].detector, fakes, eps, steps=config.attack_steps, device=device)
    crafted = time.perf_counter() - tic
    mixed = torch.cat([real, evaded])
    rows = []
    for name, model in trained.items():
        scores = model.detector.score(mixed, device=device)
        kind = "evasion (white-box)" if name == attacker else f"evasion (transfer from {attacker})"
        rows.append(result_row(config, kind, name, generator, generator, "pgd", eps, scores, y.numpy(),
                               model.threshold, crafted))
    return rows
