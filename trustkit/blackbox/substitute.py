"""Substitute-model attack (Papernot et al. 2017, "Practical Black-Box Attacks against Machine Learning").

The attacker may only ask the target for *labels*. From a small seed set of unlabeled images it trains a
local substitute: the target labels the seeds, the substitute learns them, then Jacobian-based data
augmentation adds, for every image x of the current set, ``x + λ·sign(∂F_{O(x)}(x)/∂x)`` — a step along the
substitute's sensitivity to the oracle's label, which probes the target's decision boundary — and the target
labels the new images. The set doubles per augmentation, so ``ρ`` augmentations of ``n0`` seeds cost
``n0·2^ρ`` label queries. Adversarial examples crafted on the finished substitute (white-box for the attacker)
are then sent to the target.

Refinements of the paper's Section 5: the periodic step size ``λ_ρ = λ·(−1)^⌊ρ/τ⌋`` and reservoir sampling
(after ``σ`` doublings, augment only ``κ`` randomly chosen images per round: ``n0·2^σ + κ·(ρ−σ)`` queries).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from trustkit.attacks import format_eps
from trustkit.batches import map_batches
from trustkit.blackbox.queries import LabelOracle
from trustkit.data import DatasetSpec, ImageDataset
from trustkit.errors import InvalidArgumentError
from trustkit.models import MODELS, build_model
from trustkit.models.inference import predict_labels
from trustkit.runtime import log, prepare_model, seed_everything
from trustkit.sanity import Check

DEFAULT_ATTACKS = ("fgsm", "pgd")
SUBSTITUTE_COLUMNS = ["target", "substitute", "dataset", "attack", "norm", "eps", "seed", "n", "queries",
                      "agreement", "substitute_accuracy", "target_clean_accuracy", "success_rate", "error_rate",
                      "white_box_success_rate", "mean_linf", "mean_l2", "craft_seconds", "beats_white_box"]
HISTORY_COLUMNS = ["round", "training_images", "queries", "lambda", "agreement", "substitute_accuracy", "seconds"]


@dataclass
class SubstituteConfig:
    """One substitute attack on ``target``.

    ``seed_size`` test images (balanced over classes, never used for evaluation) start the substitute's data;
    ``rho`` Jacobian augmentations (λ = ``lam``, sign flipped every ``tau`` rounds; None: never) each followed
    by a round of ``epochs`` training epochs (Adam, ``lr``); ``reservoir`` = κ images augmented per round after
    ``reservoir_after`` = σ doublings (None: always double); ``max_queries`` caps the label queries (the last
    augmentation is cut to fit). ``substitute`` is a zoo architecture. The finished substitute crafts
    ``attacks`` at every eps on ``n`` other test images (None: the data set's default count), labelling them
    with its own predictions (the attacker has no labels); each is also run white-box on the target as the
    reference.
    """

    target: str
    substitute: str = "cnn"
    dataset: str = "digits"
    seed_size: int = 100
    rho: int = 6
    epochs: int = 10
    lam: float = 0.1
    tau: int | None = 3
    reservoir: int | None = None
    reservoir_after: int = 3
    max_queries: int | None = None
    lr: float = 1e-3
    train_batch_size: int = 32
    attacks: list[str] = field(default_factory=lambda: list(DEFAULT_ATTACKS))
    eps: list[float | str] | None = None
    norm: str = "linf"
    n: int | None = None
    batch_size: int = 256
    device: str = "auto"
    seed: int = 0
    out: str = "reports"
    data_root: str | None = None
    download: bool = False
    attack_params: dict[str, Any] = field(default_factory=dict)
    strict_params: dict[str, Any] = field(default_factory=dict)
    trust_code: bool = False  # consent to a target that is a program (TorchScript, factory): --trust-code
    use_cache: bool = True  # reuse finished cells from $TRUSTKIT_HOME/cells
    jobs: int = 1
    backend: str = "local"  # where cells run: local, processes, ray (see trustkit.engine)
    ray_address: str | None = None

    def validate(self) -> "SubstituteConfig":
        """Refuse impossible settings in one line each, before any model is loaded or trained."""
        for name in ("seed_size", "epochs", "train_batch_size"):
            if int(getattr(self, name)) < 1:
                raise InvalidArgumentError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.rho < 0:
            raise InvalidArgumentError(f"--rho (Jacobian augmentations) must be >= 0, got {self.rho}")
        if not (math.isfinite(self.lam) and self.lam > 0):
            raise InvalidArgumentError(f"--lambda (augmentation step) must be > 0, got {self.lam}")
        if self.tau is not None and self.tau < 1:
            raise InvalidArgumentError(f"--tau (sign-flip period) must be at least 1, got {self.tau}")
        if self.reservoir is not None and self.reservoir < 1:
            raise InvalidArgumentError(f"--reservoir (κ images per round) must be at least 1, got {self.reservoir}")
        if self.reservoir_after < 0:
            raise InvalidArgumentError(f"--reservoir-after (σ) must be >= 0, got {self.reservoir_after}")
        if self.max_queries is not None and self.max_queries < self.seed_size:
            raise InvalidArgumentError(f"--queries {self.max_queries} cannot even label the {self.seed_size} seed "
                                       "images; raise --queries or lower --seed-size")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise InvalidArgumentError(f"--lr must be > 0, got {self.lr}")
        return self

    def planned_queries(self) -> int:
        """Label queries the substitute training will spend: n0·2^ρ, or n0·2^σ + κ·(ρ−σ) with reservoir
        sampling, capped at ``max_queries``."""
        size = self.seed_size
        for round_index in range(self.rho):
            size += self._new_images(round_index, size)
        return min(size, self.max_queries) if self.max_queries is not None else size

    def _new_images(self, round_index: int, current: int) -> int:
        if self.reservoir is not None and round_index >= self.reservoir_after:
            return min(self.reservoir, current)
        return current

    def step(self, round_index: int) -> float:
        """λ of augmentation ``round_index`` (0-based): the periodic step size λ·(−1)^⌊ρ/τ⌋."""
        return self.lam * (-1) ** (round_index // self.tau) if self.tau else self.lam


@dataclass
class TrainedSubstitute:
    """The substitute, the oracle queries it cost, its training set and the per-round history."""

    model: nn.Module
    queries: int
    x: torch.Tensor
    y: torch.Tensor
    history: list[dict[str, float]]


@dataclass
class SubstituteResult:
    """A substitute run: per (attack, eps) rows, training history, checks, metadata and the report folder."""

    run_dir: Path
    results: pd.DataFrame
    history: pd.DataFrame
    checks: list[Check]
    run_info: dict[str, Any]

    @property
    def report(self) -> Path:
        return self.run_dir / "report.html"


def seed_indices(labels: torch.Tensor, size: int, num_classes: int, seed: int) -> torch.Tensor:
    """Sorted indices of ``size`` images balanced over classes (a seeded draw; the first ``size % classes``
    classes get one more), the attacker's small "representative" set."""
    generator = torch.Generator().manual_seed(seed)
    per_class, extra = divmod(size, num_classes)
    chosen = []
    for label in range(num_classes):
        pool = (labels == label).nonzero().squeeze(1)
        pool = pool[torch.randperm(len(pool), generator=generator)]
        chosen.append(pool[:per_class + (1 if label < extra else 0)])
    picked = torch.cat(chosen)
    if len(picked) < size:  # small classes: top up from the rest
        rest = torch.ones(len(labels), dtype=torch.bool)
        rest[picked] = False
        pool = rest.nonzero().squeeze(1)
        picked = torch.cat([picked, pool[torch.randperm(len(pool), generator=generator)][:size - len(picked)]])
    return picked.sort().values


def evaluation_indices(n_total: int, excluded: torch.Tensor, n: int | None, default_n: int, seed: int) -> torch.Tensor:
    """Sorted seeded subset of the test split without the seed images (``n`` or the data set's default)."""
    keep = torch.ones(n_total, dtype=torch.bool)
    keep[excluded] = False
    pool = keep.nonzero().squeeze(1)
    count = min(n or default_n, len(pool))
    return pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed + 1))[:count]].sort().values


def jacobian_augmentation(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, lam: float, *,
                          batch_size: int, device: torch.device) -> torch.Tensor:
    """``clip(x + lam·sign(∂F_label(x)/∂x), 0, 1)`` with F the substitute's softmax output (the paper's J_F
    row of the oracle's label); inputs and result on the CPU."""
    model.eval()

    def step(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        xb = xb.requires_grad_(True)
        with torch.enable_grad():
            probabilities = model(xb).float().softmax(1).gather(1, yb[:, None]).sum()
            (grad,) = torch.autograd.grad(probabilities, xb)
        return (xb.detach() + lam * grad.sign()).clamp(0.0, 1.0)

    return map_batches(step, x, labels, batch_size=batch_size, device=device, empty=torch.empty_like(x))


def train_substitute(oracle: LabelOracle, seeds: torch.Tensor, spec: DatasetSpec, config: SubstituteConfig, *,
                     device: torch.device, eval_x: torch.Tensor | None = None, eval_target: torch.Tensor | None = None,
                     eval_y: torch.Tensor | None = None) -> TrainedSubstitute:
    """Papernot et al.'s substitute training, asking ``oracle`` for labels only (it counts the queries).

    With ``eval_x`` and the target's labels for it (``eval_target``; the evaluator's, not the attacker's
    queries) each round records the substitute's agreement with the target, and with ``eval_y`` its accuracy.
    """
    from trustkit.train import TrainConfig, fit

    seed_everything(config.seed)
    model = prepare_model(build_model(MODELS.canonical(config.substitute), spec), device)
    x_sub = seeds.clone()
    y_sub = oracle(x_sub)
    history = []
    train_config = TrainConfig(epochs=config.epochs, batch_size=config.train_batch_size, lr=config.lr,
                               optimizer="adam", weight_decay=0.0, augment=False, amp=False)
    generator = torch.Generator().manual_seed(config.seed)
    for round_index in range(config.rho + 1):
        started = time.perf_counter()
        data = ImageDataset(x_sub, y_sub, name=spec.name, split="substitute", class_names=spec.class_names)
        fit(model, data, train_config, device=device, seed=config.seed + round_index,
            description=f"substitute round {round_index}/{config.rho} ({len(x_sub)} images)")
        record: dict[str, float] = {"round": round_index, "training_images": len(x_sub), "queries": oracle.queries,
                                    "lambda": config.step(round_index) if round_index < config.rho else math.nan}
        if eval_x is not None:
            predicted = predict_labels(model, eval_x, batch_size=512, device=device)
            record["agreement"] = (predicted == eval_target).float().mean().item() if eval_target is not None else math.nan
            record["substitute_accuracy"] = (predicted == eval_y).float().mean().item() if eval_y is not None else math.nan
        if round_index == config.rho:
            record["seconds"] = time.perf_counter() - started
            history.append(record)
            break
        count = config._new_images(round_index, len(x_sub))
        if config.max_queries is not None:
            count = min(count, config.max_queries - oracle.queries)
        if count < len(x_sub):  # reservoir sampling or the query budget: a uniform draw of the current set
            base = torch.randperm(len(x_sub), generator=generator)[:count].sort().values
        else:
            base = torch.arange(len(x_sub))
        if count > 0:
            new = jacobian_augmentation(model, x_sub[base], y_sub[base], config.step(round_index),
                                        batch_size=512, device=device)
            x_sub, y_sub = torch.cat([x_sub, new]), torch.cat([y_sub, oracle(new)])
        record["seconds"] = time.perf_counter() - started
        history.append(record)
        if count == 0:
            log(f"query budget of {config.max_queries} spent after round {round_index}; training stops")
            break
    model.eval()
    return TrainedSubstitute(model, oracle.queries, x_sub, y_sub, history)


def beats_white_box(results: pd.DataFrame) -> pd.Series:
    """Bool per row: the substitute attack beat the strongest white-box attack on the target at the same norm
    and eps by more than one image (noise)."""
    if results.empty:
        return pd.Series(False, index=results.index, dtype=bool)
    best = results.groupby(["norm", "eps"])["white_box_success_rate"].transform("max")
    tolerance = 1.0 / (results["target_clean_accuracy"] * results["n"]).clip(lower=1) + 1e-9
    return results["success_rate"] > best + tolerance


def substitute_checks(results: pd.DataFrame) -> list[Check]:
    """Black-box-vs-white-box: the substitute's transfer must not beat gradient attacks on the target itself."""
    name, anchor = "white-box attacks beat black-box ones", "black-box-vs-white-box"
    if results.empty:
        return [Check(name, "skipped", "no attack was run", anchor)]
    bad = results[beats_white_box(results)]
    if bad.empty:
        return [Check(name, "pass", "no substitute (transfer) attack beat the strongest white-box attack on the "
                      "target", anchor)]
    lines = "; ".join(f"{r.attack} eps {format_eps(r.eps)}: substitute {r.success_rate:.1%} vs white-box "
                      f"{r.white_box_success_rate:.1%}" for r in bad.itertuples())
    return [Check(name, "flag", "adversarial examples from the substitute fooled the target more often than gradient "
                  "attacks on the target itself — the target's gradients are likely masked: " + lines, anchor)]


__all__ = ["HISTORY_COLUMNS", "SUBSTITUTE_COLUMNS", "SubstituteConfig", "SubstituteResult", "TrainedSubstitute",
           "beats_white_box", "evaluation_indices", "jacobian_augmentation", "seed_indices", "substitute_checks",
           "train_substitute"]
