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
from trustkit.detection import DEFAULT_DETECTORS, DETECTORS, Detector, make_detector
from trustkit.detection.data import DEFAULT_GENERATORS, FakeImageSet
from trustkit.detection.evaluate import calibrate_threshold, roc_points, score_quality
from trustkit.detection.perturb import PERTURBATIONS
from trustkit.errors import CheckpointError, InvalidArgumentError
from trustkit.models.store import checkpoint_exists, entry_lock, read_checkpoint, save_tensors, store_path
from trustkit.runtime import seed_everything, select_device

DEFAULT_EPS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)
PROTOCOLS = ("cnndetection",)
PROTOCOL_DETECTORS = ["cnn", "cnn-blur-jpeg"]  # the protocol compares the augmented CNN with the plain one
REALISM_COLUMNS = ["dataset", "generator", "domain_fid", "real_floor", "n_fake", "n_real", "features", "seconds"]
RESULT_COLUMNS = ["dataset", "kind", "detector", "train_generator", "test_generator", "condition", "eps", "auc",
                  "ap", "accuracy", "threshold", "n_real", "n_fake", "seconds"]


@dataclass
class FakesConfig:
    """One fake-detection study: generators × detectors on a data set (sizes are images per class and split)."""

    dataset: str = "faces"
    generators: list[str] = field(default_factory=lambda: list(DEFAULT_GENERATORS))
    detectors: list[str] = field(default_factory=lambda: list(DEFAULT_DETECTORS))
    # generators the detectors are trained on (empty: each of ``generators``); all are tested
    train_on: list[str] = field(default_factory=list)
    # "cnndetection": Wang et al.'s protocol (train on one generator, default the first, with cnn and
    # cnn-blur-jpeg unless detectors are given; test on all)
    protocol: str = ""
    realism: bool = True  # domain FID of each generator's test fakes against the real test images
    n_train: int = 2000
    n_val: int = 500
    n_test: int = 1000
    seed: int = 0
    eps: list[float] = field(default_factory=lambda: list(DEFAULT_EPS))
    attack_steps: int = 100  # APGD steps of the evasion (trustkit.detection.evasion)
    perturbations: list[str] = field(default_factory=lambda: list(PERTURBATIONS))
    device: str = "auto"
    data_root: str | None = None
    out: str = "reports"
    use_cache: bool = True
    jobs: int = 1
    backend: str = "local"
    ray_address: str | None = None

    def validate(self) -> "FakesConfig":
        if self.protocol and self.protocol not in PROTOCOLS:
            raise InvalidArgumentError(f"unknown protocol '{self.protocol}'; choose from {', '.join(PROTOCOLS)}")
        if self.protocol == "cnndetection" and self.detectors == list(DEFAULT_DETECTORS):
            self.detectors = list(PROTOCOL_DETECTORS)
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

    def check_train_on(self) -> None:
        """After ``generators`` are canonical: ``train_on`` names some of them (the protocol's default: the
        first); a one-line error otherwise."""
        from trustkit.generative import GENERATIVE_MODELS

        if self.protocol == "cnndetection" and not self.train_on:
            self.train_on = self.generators[:1]
        chosen = [GENERATIVE_MODELS.canonical(g) for g in self.train_on]
        missing = [g for g in chosen if g not in self.generators]
        if missing:
            raise InvalidArgumentError(f"--train-on {', '.join(missing)} is not among the generators "
                                       f"({', '.join(self.generators)}); add it to --generators")
        self.train_on = list(dict.fromkeys(chosen))

    @property
    def training_generators(self) -> list[str]:
        """The generators detectors are trained on: ``train_on``, or every generator."""
        return self.train_on or self.generators


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
    """The strongest white-box evasion at ``eps`` (linf) of ``generator``'s test fakes against detector
    ``attacker`` (:func:`trustkit.detection.evasion.evade_strongest`: APGD on the logit margin and on
    cross-entropy with ``config.attack_steps`` steps, and PGD-10, each re-quantised to 8 bits, and the per-image
    strongest). The attacked detector scores real + evaded fakes of every variant (white-box rows, ``condition``
    the variant; ``strongest (float)`` before quantisation); every other detector of ``trained`` (by name, all
    trained on ``generator``) scores the strongest images (transfer rows)."""
    from trustkit.detection.evasion import evade_strongest

    x, y = images.pair("test", generator)
    real, fakes = x[y == 0], x[y == 1]
    seed_everything(config.seed)
    tic = time.perf_counter()
    evaded = evade_strongest(trained[attacker].detector, fakes, eps, steps=config.attack_steps, device=device)
    crafted = time.perf_counter() - tic
    labels = y.numpy()
    attacked = trained[attacker]
    real_scores = attacked.detector.score(real, device=device)
    rows = []
    for variant, fake_scores in evaded.p_fake.items():
        rows.append(result_row(config, "evasion (white-box)", attacker, generator, generator, variant, eps,
                               np.concatenate([real_scores, fake_scores]), labels, attacked.threshold, crafted))
    rows.append(result_row(config, "evasion (white-box)", attacker, generator, generator, "strongest (float)", eps,
                           np.concatenate([real_scores, evaded.p_fake_float["strongest"]]), labels,
                           attacked.threshold, crafted))
    mixed = torch.cat([real, evaded.images["strongest"]])
    for name, model in trained.items():
        if name == attacker:
            continue
        scores = model.detector.score(mixed, device=device)
        rows.append(result_row(config, f"evasion (transfer from {attacker})", name, generator, generator,
                               "strongest", eps, scores, labels, model.threshold, crafted))
    return rows


def measure_realism(config: FakesConfig, images: FakeImageSet, generator: str, device: torch.device) -> dict[str, Any]:
    """How realistic ``generator``'s test fakes are: the domain FID (Fréchet distance on the penultimate features
    of the data set's zoo ``cnn`` classifier, trained and cached if missing) against the real test images, beside
    the same distance between real training and real test images (the floor a perfect generator would reach)."""
    from trustkit.generative.features import domain_feature_net
    from trustkit.generative.metrics import frechet_distance

    tic = time.perf_counter()
    net, _ = domain_feature_net(images.dataset, data_root=config.data_root, device=device)
    real_test = net(images.real["test"].float() / 255.0, 256).features
    real_train = net(images.real["train"][:len(images.real["test"])].float() / 255.0, 256).features
    fakes = net(images.fake[generator]["test"].float() / 255.0, 256).features
    return {"dataset": images.dataset, "generator": generator, "domain_fid": frechet_distance(real_test, fakes),
            "real_floor": frechet_distance(real_test, real_train), "n_fake": len(fakes), "n_real": len(real_test),
            "features": f"{net.name} penultimate layer ({net.dim}-d)", "seconds": time.perf_counter() - tic}
