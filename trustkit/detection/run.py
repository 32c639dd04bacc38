"""``trustkit detect`` / ``trustkit bench fakes``: build real/fake data, train detectors, measure them, report."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from trustkit.attacks import parse_eps
from trustkit.detection import DETECTORS, Detector, make_detector
from trustkit.detection.data import DEFAULT_GENERATORS, FakeImageSet, build_fake_set
from trustkit.detection.evaluate import calibrate_threshold, evade, roc_points, score_quality
from trustkit.detection.perturb import PERTURBATIONS
from trustkit.errors import CheckpointError, InvalidArgumentError
from trustkit.models.store import checkpoint_exists, read_checkpoint, save_tensors, store_path
from trustkit.runtime import progress, seed_everything, select_device

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
                   device: torch.device | None = None, use_cache: bool = True) -> TrainedDetector:
    """Train (or load, if the store holds one fitted on exactly this data) detector ``name`` on real vs
    ``generator`` fakes; the threshold is calibrated on the validation split."""
    path = store_path(detector_entry(name, images.dataset, generator))
    detector = make_detector(name, images.dataset)
    if use_cache and checkpoint_exists(path):
        try:
            weights, meta = read_checkpoint(path)  # one open: weights and metadata of the same version
            if meta.get("data_key") == images.key and meta.get("seed") == seed:
                detector.load_state(weights)
                return TrainedDetector(detector, meta["threshold"], meta["validation"], True)
        except CheckpointError:
            pass  # unreadable: retrain and overwrite
    seed_everything(seed)
    x, y = images.pair("train", generator)
    detector.fit(x, y, seed=seed, device=device)
    x_val, y_val = images.pair("val", generator)
    val_scores = detector.score(x_val, device=device)
    threshold = calibrate_threshold(val_scores, y_val.numpy())
    validation = score_quality(val_scores, y_val.numpy(), threshold).as_dict()
    save_tensors(detector.state(), {"kind": "detector", "detector": name, "dataset": images.dataset,
                                    "generator": generator, "data_key": images.key, "seed": seed,
                                    "options": detector.options(), "threshold": threshold, "validation": validation},
                 path)
    return TrainedDetector(detector, threshold, validation, False)


def _row(config: FakesConfig, kind: str, detector: str, train: str, test: str, condition: str, eps: float,
         scores: np.ndarray, labels: np.ndarray, threshold: float, seconds: float) -> dict[str, Any]:
    quality = score_quality(scores, labels, threshold)
    return {"dataset": config.dataset, "kind": kind, "detector": detector, "train_generator": train,
            "test_generator": test, "condition": condition, "eps": eps, **quality.as_dict(),
            "n_real": int((labels == 0).sum()), "n_fake": int((labels == 1).sum()), "seconds": seconds}


@dataclass
class FakesResult:
    run_dir: Path
    results: pd.DataFrame
    run_info: dict[str, Any]

    @property
    def report(self) -> Path:
        return self.run_dir / "report.html"


def detect_fakes(config: FakesConfig) -> dict[str, Any]:
    """Build the data, train every detector on every generator, and measure: in-distribution and
    cross-generator AUC/AP/accuracy, degradations, and evasion by PGD on the CNN (transferred to the others)."""
    started = time.perf_counter()
    config = config.validate()
    device = select_device(config.device)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    images = build_fake_set(config.dataset, config.generators, n_train=config.n_train, n_val=config.n_val,
                            n_test=config.n_test, seed=config.seed, data_root=config.data_root,
                            device=config.device, use_cache=config.use_cache)
    timings["data"] = time.perf_counter() - t0
    generators = images.generators
    trained: dict[tuple[str, str], TrainedDetector] = {}
    t0 = time.perf_counter()
    with progress("train detectors", len(config.detectors) * len(generators)) as bar:
        for name in config.detectors:
            for generator in generators:
                bar.note(f"{name} on {generator}")
                trained[(name, generator)] = train_detector(name, images, generator, seed=config.seed, device=device,
                                                            use_cache=config.use_cache)
                bar.advance()
    timings["train_detectors"] = time.perf_counter() - t0

    rows, rocs = [], {}
    test_pairs = {g: images.pair("test", g) for g in generators}
    t0 = time.perf_counter()
    for (name, train_generator), model in trained.items():
        for test_generator, (x, y) in test_pairs.items():
            t1 = time.perf_counter()
            scores = model.detector.score(x, device=device)
            rows.append(_row(config, "cross-generator", name, train_generator, test_generator, "clean", 0.0, scores,
                             y.numpy(), model.threshold, time.perf_counter() - t1))
            if test_generator == train_generator:
                rocs[(name, train_generator)] = roc_points(scores, y.numpy())
    timings["cross_generator"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with progress("degradations", len(generators) * len(config.perturbations)) as bar:
        for generator, (x, y) in test_pairs.items():
            for condition in config.perturbations:
                degraded = PERTURBATIONS[condition](x, torch.Generator().manual_seed(config.seed))
                for name in config.detectors:
                    model = trained[(name, generator)]
                    t1 = time.perf_counter()
                    scores = model.detector.score(degraded, device=device)
                    rows.append(_row(config, "degradation", name, generator, generator, condition, 0.0, scores,
                                     y.numpy(), model.threshold, time.perf_counter() - t1))
                bar.advance()
    timings["degradations"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    attackers = [n for n in config.detectors if DETECTORS.get(n).differentiable]
    with progress("evasion", len(attackers) * len(generators) * len(config.eps)) as bar:
        for attacker in attackers:
            for generator, (x, y) in test_pairs.items():
                real, fakes = x[y == 0], x[y == 1]
                for eps in config.eps:
                    seed_everything(config.seed)
                    t1 = time.perf_counter()
                    evaded = evade(trained[(attacker, generator)].detector, fakes, eps, steps=config.attack_steps,
                                   device=device)
                    crafted = time.perf_counter() - t1
                    mixed = torch.cat([real, evaded])
                    for name in config.detectors:  # white-box for the attacked detector, transfer for the rest
                        model = trained[(name, generator)]
                        scores = model.detector.score(mixed, device=device)
                        kind = "evasion (white-box)" if name == attacker else f"evasion (transfer from {attacker})"
                        rows.append(_row(config, kind, name, generator, generator, "pgd", eps, scores, y.numpy(),
                                         model.threshold, crafted))
                    bar.advance()
    timings["evasion"] = time.perf_counter() - t0

    results = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    timings["total"] = time.perf_counter() - started
    return dict(config=config, images=images, trained=trained, results=results, rocs=rocs, timings=timings,
                device=device)
