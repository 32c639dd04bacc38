"""Transfer attacks: what a transfer row means, the source × target matrix and the black-box sanity check.
(The study that runs them is :mod:`trustkit.studies.transfer`; ``trustkit.engine.run_transfer`` runs it.)

The attacker owns the *source* models (or an ensemble of them, logits averaged) and never touches the
*target*: the target is only asked, by the evaluator, for its predictions on the finished adversarial images.
Success on a target is the share of the images it classifies correctly that it misclassifies after the
perturbation. Every target is also attacked white-box with the same attack at its default settings (iterative
attacks keep each sample's first fooling iterate, the strongest white-box number) — the reference each transfer
is compared with, and the diagonal of the source × target matrix when a model is both. Transfer crafting runs
iterative attacks to their last iterate instead, which lies deeper across the boundary and transfers better.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from trustkit.attacks import format_eps
from trustkit.attacks.spec import AttackSpec
from trustkit.blackbox.models import NamedModel
from trustkit.sanity import Check

DEFAULT_ATTACKS = ("fgsm", "pgd")
WHITE_BOX_ROW = "white-box (target itself)"
TRANSFER_COLUMNS = ["source", "target", "dataset", "attack", "norm", "eps", "seed", "n", "white_box",
                    "source_clean_accuracy", "target_clean_accuracy", "target_correct", "successes", "success_rate",
                    "target_robust_accuracy", "mean_linf", "mean_l2", "craft_seconds", "beats_white_box"]


@dataclass
class TransferConfig:
    """Sources × targets × attacks × epsilons on one data set.

    ``sources`` and ``targets`` are model specs (zoo names, store entries, checkpoint files, factories); a
    source ``"cnn+mlp"`` is an ensemble that averages the members' logits. ``attacks`` are registry names
    (iterative ones run without early stopping — the last iterate lies deeper across the boundary and
    transfers better — unless ``attack_params`` says ``early_stop``). ``eps`` None means the data set's grid;
    ``n`` None its default sample count; ``attack_params`` go to every attack that takes them, ``strict_params``
    too but must be taken by at least one.
    """

    sources: list[str]
    targets: list[str]
    dataset: str = "digits"
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
    trust_code: bool = False  # consent to models that are programs (TorchScript, factories): --trust-code
    use_cache: bool = True  # reuse finished cells from $TRUSTKIT_HOME/cells
    jobs: int = 1
    backend: str = "local"  # where cells run: local, processes, ray (see trustkit.engine)
    ray_address: str | None = None


@dataclass
class TransferResult:
    """What a transfer run produced: tidy rows (one per crafting model × target × attack × eps), checks,
    run metadata and the report folder."""

    run_dir: Path
    results: pd.DataFrame
    checks: list[Check]
    run_info: dict[str, Any]

    @property
    def report(self) -> Path:
        return self.run_dir / "report.html"

    def matrix(self, attack: str, eps: float, norm: str | None = None) -> pd.DataFrame:
        """Success rates (fractions): sources (rows, then the white-box reference) × targets (columns)."""
        return success_matrix(self.results, attack, eps, norm)


def success_matrix(results: pd.DataFrame, attack: str, eps: float, norm: str | None = None) -> pd.DataFrame:
    """The source × target success matrix of one (attack, eps); the last row is each target's white-box attack."""
    rows = results[(results["attack"] == attack) & ((results["eps"] - eps).abs() < 1e-12)]
    if norm is not None:
        rows = rows[rows["norm"] == norm]
    targets = list(dict.fromkeys(rows["target"]))
    sources = list(dict.fromkeys(rows.loc[rows["is_source"], "source"])) if "is_source" in rows else \
        list(dict.fromkeys(rows["source"]))
    crafted = rows[rows["is_source"]] if "is_source" in rows else rows
    table = crafted.pivot_table(index="source", columns="target", values="success_rate", aggfunc="first")
    table = table.reindex(index=sources, columns=targets)
    white = rows[rows["white_box"]].drop_duplicates("target").set_index("target")["success_rate"]
    table.loc[WHITE_BOX_ROW] = white.reindex(targets).values
    return table


def build_cell_attack(spec: AttackSpec, eps: float, norm: str, batch_size: int, explicit: dict[str, Any]):  # noqa: ANN201
    """The attack of a transfer crafting: iterative attacks return their last iterate (it lies deeper across
    the boundary and transfers better) unless ``early_stop`` was asked for explicitly."""
    attack = spec.build(eps, norm, batch_size)
    if hasattr(attack, "early_stop") and "early_stop" not in explicit:
        attack.early_stop = False
    return attack


def beats_white_box(results: pd.DataFrame) -> pd.Series:
    """Bool per row: a transfer row whose success beats the strongest white-box attack on its target at the same
    norm and eps by more than one image (noise); False for white-box rows and where there is no reference."""
    white = results[results["white_box"]]
    if white.empty:
        return pd.Series(False, index=results.index)
    best = white.groupby(["target", "norm", "eps"])["success_rate"].max().rename("best_white_box")
    merged = results.join(best, on=["target", "norm", "eps"])
    tolerance = 1.0 / merged["target_correct"].clip(lower=1) + 1e-9
    return (~merged["white_box"]) & (merged["success_rate"] > merged["best_white_box"] + tolerance)


def transfer_checks(results: pd.DataFrame) -> list[Check]:
    """Black-box-vs-white-box: a transfer attack must not beat the strongest white-box attack on its target."""
    name, anchor = "white-box attacks beat black-box ones", "black-box-vs-white-box"
    white = results[results["white_box"]]
    transfer = results[~results["white_box"]]
    if white.empty or transfer.empty:
        return [Check(name, "skipped", "needs a transfer (source differs from target) and a white-box row", anchor)]
    best = white.groupby(["target", "norm", "eps"])["success_rate"].max().rename("best_white_box")
    bad = results[beats_white_box(results)].join(best, on=["target", "norm", "eps"])
    if bad.empty:
        return [Check(name, "pass", "no transfer attack beat the strongest white-box attack on its target", anchor)]
    lines = "; ".join(f"{r.source} → {r.target} {r.attack} eps {format_eps(r.eps)}: {r.success_rate:.1%} vs white-box "
                      f"{r.best_white_box:.1%}" for r in bad.itertuples())
    return [Check(name, "flag", "adversarial examples crafted on another model fooled a target more often than "
                  "gradient attacks on the target itself — its gradients are likely masked or obfuscated, or the "
                  "white-box attack is too weak: " + lines, anchor)]


def transfer_row(config: TransferConfig, dataset: str, crafted_on: NamedModel, target: NamedModel, spec: AttackSpec,
                 eps: float, y: torch.Tensor, adversarial: torch.Tensor, source_clean: torch.Tensor,
                 target_clean: torch.Tensor, linf: torch.Tensor, l2: torch.Tensor, seconds: float,
                 is_source: bool) -> dict[str, Any]:
    """One tidy row: success of images crafted on ``crafted_on`` against ``target``, from the target's clean
    and adversarial predicted labels (fractions in [0, 1]; norms in pixel units; seconds of crafting)."""
    correct = target_clean == y
    flipped = correct & (adversarial != y)
    return {
        "source": crafted_on.name, "target": target.name, "dataset": dataset, "attack": spec.label,
        "norm": config.norm, "eps": eps, "seed": config.seed, "n": len(y),
        "white_box": crafted_on.module is target.module,
        "source_clean_accuracy": (source_clean == y).float().mean().item(),
        "target_clean_accuracy": correct.float().mean().item(),
        "target_correct": int(correct.sum()), "successes": int(flipped.sum()),
        "success_rate": (flipped.sum() / correct.sum()).item() if correct.any() else float("nan"),
        "target_robust_accuracy": (correct & (adversarial == y)).float().mean().item(),
        "mean_linf": linf.mean().item(), "mean_l2": l2.mean().item(), "craft_seconds": seconds,
        "is_source": is_source,
    }


__all__ = ["TRANSFER_COLUMNS", "TransferConfig", "TransferResult", "beats_white_box", "build_cell_attack", "success_matrix",
           "transfer_checks", "transfer_row"]
