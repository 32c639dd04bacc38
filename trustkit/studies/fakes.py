"""The fake-detection study (``trustkit bench fakes``, ``trustkit detect eval``) as engine cells.

Two kinds of cell share one group — the real/fake image set, built (and its missing generators trained) once
in the driver:

- a *detector* cell (detector, generator) trains that detector on real vs that generator's fakes (or reuses
  the store's, when it was fitted on exactly this data and seed), then scores it on every generator's test
  fakes (cross-generator rows, the diagonal is in-distribution) and on each degradation of its own generator;
- an *evasion* cell (attacker, generator, eps) runs the strongest evasion trustkit has (APGD on the logit
  margin and on cross-entropy, PGD-10; 8-bit re-quantised, per image the strongest) against one differentiable
  detector on that generator's test fakes and lets every detector trained on the generator score the result
  (white-box for the attacked one, transfer for the rest);
- a *realism* cell (generator) measures how realistic its fakes are: domain FID against the real test images.

Detectors are trained on ``config.training_generators`` (all generators, or ``--train-on``; the CNNDetection
protocol trains on one) and tested on every generator.

Detectors are trained under their store entry's lock, so an evasion cell that needs a detector another cell
is training waits for it instead of training it twice; a run killed at any moment resumes from its finished
cells (the engine's cache) and its trained detectors (the store). With ``--no-cache`` a run reuses only the
detectors it trained itself (a run token in their metadata).
"""
from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import pandas as pd
import torch

from trustkit.attacks import format_eps
from trustkit.detection import DETECTORS, make_detector
from trustkit.detection.data import FakeImageSet, build_fake_set, check_request, describe
from trustkit.detection.evasion import VARIANTS
from trustkit.detection.run import (REALISM_COLUMNS, RESULT_COLUMNS, FakesConfig, TrainedDetector, measure_detector,
                                    measure_evasion, measure_realism, train_detector)
from trustkit.fingerprint import cache_key, file_fingerprint
from trustkit.sanity import Check
from trustkit.studies.base import Memo, Progress, StudyOutput, TrainStep

KIND_ORDER = {"cross-generator": 0, "degradation": 1}  # then the evasion rows


@dataclass(frozen=True)
class DetectorCell:
    """Train (or reuse) ``detector`` on ``generator``'s fakes; score it across generators and degradations."""

    detector: str
    generator: str

    group = "fakes"

    def title(self) -> str:
        return f"{self.detector} on {self.generator}"


@dataclass(frozen=True)
class EvasionCell:
    """PGD at ``eps`` against ``attacker`` (trained on ``generator``), judged by every detector of it."""

    attacker: str
    generator: str
    eps: float

    group = "fakes"

    def title(self) -> str:
        return f"evade {self.attacker} on {self.generator} at eps {format_eps(self.eps)}"


@dataclass(frozen=True)
class RealismCell:
    """Domain FID of ``generator``'s test fakes against the real test images."""

    generator: str

    group = "fakes"

    def title(self) -> str:
        return f"realism of {self.generator}"


@dataclass
class FakesState:
    """The real/fake image set (uint8, CPU) every cell shares."""

    images: FakeImageSet


@dataclass
class FakesStudy:
    """A validated fake-detection configuration as engine cells."""

    config: FakesConfig
    # with the cache off, detectors are reused only when this run trained them: its token, set once here so
    # that every worker process (which unpickles this study) carries the same one
    run_token: str = ""
    kind: str = "fakes"

    def cells(self) -> Sequence[DetectorCell | EvasionCell | RealismCell]:
        config = self.config
        trained_on = config.training_generators
        training = [DetectorCell(d, g) for d in config.detectors for g in trained_on]
        attackers = [d for d in config.detectors if DETECTORS.get(d).differentiable]
        evasion = [EvasionCell(a, g, e) for a in attackers for g in trained_on for e in config.eps]
        realism = [RealismCell(g) for g in config.generators] if config.realism else []
        return training + evasion + realism

    def description(self) -> str:
        return f"fakes on {self.config.dataset}"

    def settings(self) -> dict[str, Any]:
        return asdict(self.config)

    def prerequisites(self) -> list[TrainStep]:
        config = self.config
        steps = [TrainStep(g, config.dataset, config.data_root, kind="generator") for g in config.generators]
        # the realism cells' feature net: trained before the cells are keyed by its weights
        return steps + ([TrainStep("cnn", config.dataset, config.data_root)] if config.realism else [])

    def prepare(self, cells: Sequence[Any], device: torch.device) -> FakesState:
        config = self.config
        images = build_fake_set(config.dataset, config.generators, n_train=config.n_train, n_val=config.n_val,
                                n_test=config.n_test, seed=config.seed, data_root=config.data_root,
                                device=config.device, use_cache=config.use_cache)
        return FakesState(images)

    def key(self, cell: DetectorCell | EvasionCell | RealismCell, state: FakesState, device_type: str) -> str:
        config = self.config
        if isinstance(cell, RealismCell):  # the feature net: the data set's zoo cnn (a prerequisite), by its weights
            from trustkit.models.store import store_name, store_path

            weights = store_path(store_name("cnn", state.images.dataset))
            return cache_key({"fakes": {"cell": "RealismCell", **asdict(cell)}, "data": state.images.key,
                              "features": file_fingerprint(weights) if weights.exists() else "untrained",
                              "device": device_type})
        involved = [cell.detector] if isinstance(cell, DetectorCell) else config.detectors
        return cache_key({"fakes": {"cell": type(cell).__name__, **asdict(cell)}, "data": state.images.key,
                          "generators": state.images.generators, "seed": config.seed,
                          "detectors": {d: make_detector(d, state.images.dataset).options() for d in involved},
                          "perturbations": config.perturbations if isinstance(cell, DetectorCell) else [],
                          "attack_steps": config.attack_steps if isinstance(cell, EvasionCell) else 0,
                          "device": device_type})

    def _detector(self, name: str, generator: str, state: FakesState, device: torch.device) -> TrainedDetector:
        return train_detector(name, state.images, generator, seed=self.config.seed, device=device,
                              use_cache=self.config.use_cache, run_token=self.run_token)

    def run(self, cell: DetectorCell | EvasionCell | RealismCell, state: FakesState, device: torch.device,
            bar: Progress | None) -> dict[str, Any]:
        if isinstance(cell, RealismCell):
            return {"rows": [], "realism": measure_realism(self.config, state.images, cell.generator, device)}
        if isinstance(cell, DetectorCell):
            trained = self._detector(cell.detector, cell.generator, state, device)
            if bar is not None:
                bar.advance(0.8)  # training is most of a detector cell
            measured = measure_detector(self.config, state.images, cell.detector, cell.generator, trained, device)
            return {**measured, "detector": {"threshold": trained.threshold, "validation": trained.validation,
                                             "from_store": trained.cached}}
        trained_on = {d: self._detector(d, cell.generator, state, device) for d in self.config.detectors}
        return {"rows": measure_evasion(self.config, state.images, cell.attacker, cell.generator, cell.eps,
                                        trained_on, device)}

    def portable(self, state: FakesState) -> FakesState:
        return state  # uint8 CPU tensors already

    def localize(self, state: FakesState, device: torch.device) -> FakesState:
        return state  # detectors move what they score themselves

    def finish_group(self, cells: Sequence[Any], state: FakesState, device: torch.device,
                     memo: Memo) -> dict[str, Any]:
        return {"images": state.images, "data": describe(state.images)}  # the report's samples and spectra

    def frames(self, output: StudyOutput) -> dict[str, pd.DataFrame]:
        rows = [row for r in output.finished for row in r.data["rows"]]
        results = pd.DataFrame(rows, columns=RESULT_COLUMNS)
        if len(results):  # cross-generator, then degradations (by generator and degradation), then evasion
            generators = self.config.generators
            conditions = {c: i for i, c in enumerate(["clean", *self.config.perturbations, *VARIANTS, "strongest",
                                                      "strongest (float)"])}
            order = results.assign(
                _k=results["kind"].map(KIND_ORDER).fillna(2),
                _g=results["train_generator"].map(generators.index).where(results["kind"] == "degradation", 0),
                _c=results["condition"].map(conditions))
            results = order.sort_values(["_k", "_g", "_c"], kind="stable").drop(columns=["_k", "_g", "_c"])
            results = results.reset_index(drop=True)
        realism = pd.DataFrame([r.data["realism"] for r in output.finished if "realism" in r.data],
                               columns=REALISM_COLUMNS)
        return {"results.csv": results, "realism.csv": realism}

    def checks(self, tables: dict[str, pd.DataFrame], output: StudyOutput) -> list[Check]:
        return []

    def group_checks(self, output: StudyOutput) -> list[Check]:
        return []

    def headline(self, output: StudyOutput) -> tuple[str, str, str]:
        config = self.config
        trained = f" (trained on {', '.join(config.train_on)})" if config.train_on else ""
        protocol = "CNNDetection protocol: " if config.protocol == "cnndetection" else ""
        return (f"fakes-{config.dataset}", f"Can fakes of {config.dataset} be caught?",
                f"{protocol}{', '.join(config.detectors)}{trained} against {', '.join(config.generators)}")

    def run_extras(self, output: StudyOutput) -> dict[str, Any]:
        group = output.groups.get("fakes", {})
        detectors = {f"{r.cell.detector}@{r.cell.generator}": r.data["detector"] for r in output.finished
                     if isinstance(r.cell, DetectorCell)}
        return {"data": group.get("data", {}), "detectors": detectors}


def fakes_study(config: FakesConfig) -> FakesStudy:
    """Validate ``config`` (detectors, degradations, budgets, generators) before any generator is trained."""
    config = config.validate()
    sizes = {"train": config.n_train, "val": config.n_val, "test": config.n_test}
    config.dataset, config.generators = check_request(config.dataset, config.generators, sizes, config.data_root)
    config.check_train_on()
    return FakesStudy(config, run_token="" if config.use_cache else uuid.uuid4().hex)
