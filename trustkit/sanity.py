"""Sanity checks that flag signs of a weak evaluation or gradient masking (Carlini et al. 2019).

Each check looks at the tidy results frame and returns :class:`Check` records with status ``pass``,
``flag`` or ``skipped``; reports list them all, so a reader sees what was checked, not only what failed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import pandas as pd

from trustkit.attacks.base import format_eps

DOCS = "docs/sanity-checks.md"
ITERATIVE_ATTACKS = ("pgd",)
SINGLE_STEP_ATTACKS = ("fgsm",)


@dataclass(frozen=True)
class Check:
    """Outcome of one sanity check: ``status`` is "pass", "flag" or "skipped"; ``detail`` explains it."""

    name: str
    status: str
    detail: str
    anchor: str

    def to_dict(self) -> dict[str, str]:
        return {**asdict(self), "docs": f"{DOCS}#{self.anchor}"}


def _tolerance(n: int) -> float:
    """Allow one sample of noise (random starts) before calling a difference real."""
    return 1.0 / max(n, 1) + 1e-9


def robust_accuracy_monotone(results: pd.DataFrame) -> list[Check]:
    """Robust accuracy must not rise with epsilon: a larger ball contains the smaller one."""
    name, anchor = "robust accuracy falls with epsilon", "monotone-in-epsilon"
    problems = []
    for (model, attack, norm), group in results.groupby(["model", "attack", "norm"], sort=False):
        ordered = group.sort_values("eps")
        previous = None
        for row in ordered.itertuples():
            if previous is not None and row.robust_accuracy > previous.robust_accuracy + _tolerance(row.n):
                problems.append(f"{attack} ({norm}) on {model}: {previous.robust_accuracy:.1%} at eps "
                                f"{format_eps(previous.eps)} but {row.robust_accuracy:.1%} at eps {format_eps(row.eps)}")
            previous = row
    if results["eps"].nunique() < 2:
        return [Check(name, "skipped", "needs at least two epsilons", anchor)]
    if problems:
        return [Check(name, "flag", "robust accuracy rose with epsilon — a sign of gradient masking or a weak "
                      "attack: " + "; ".join(problems), anchor)]
    return [Check(name, "pass", "robust accuracy never rises with epsilon", anchor)]


def iterative_not_weaker(results: pd.DataFrame) -> list[Check]:
    """An iterative attack (PGD) must do at least as well as a single step (FGSM) at the same epsilon."""
    name, anchor = "iterative attacks beat single-step ones", "iterative-vs-single-step"
    single = results[results["attack"].isin(SINGLE_STEP_ATTACKS)]
    iterative = results[results["attack"].isin(ITERATIVE_ATTACKS)]
    if single.empty or iterative.empty:
        return [Check(name, "skipped", "needs both a single-step (fgsm) and an iterative (pgd) attack", anchor)]
    keys = ["model", "norm", "eps"]
    merged = iterative.merge(single, on=keys, suffixes=("_iter", "_single"))
    bad = merged[merged["robust_accuracy_iter"] > merged["robust_accuracy_single"] + merged["n_iter"].map(_tolerance)]
    if bad.empty:
        return [Check(name, "pass", "every iterative attack is at least as strong as FGSM", anchor)]
    lines = [f"{r.attack_iter} {r.robust_accuracy_iter:.1%} vs {r.attack_single} {r.robust_accuracy_single:.1%} at "
             f"eps {format_eps(r.eps)} ({r.norm})" for r in bad.itertuples()]
    return [Check(name, "flag", "an iterative attack left more points robust than one gradient step — gradients "
                  "may be masked or the attack misconfigured: " + "; ".join(lines), anchor)]


CHECKS: list[Callable[[pd.DataFrame], list[Check]]] = [robust_accuracy_monotone, iterative_not_weaker]


def run_checks(results: pd.DataFrame) -> list[Check]:
    """All result-frame checks, in a fixed order."""
    return [check for fn in CHECKS for check in fn(results)]
