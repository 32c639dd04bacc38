"""Machine-readable exports beside a run's tables: ``robustbench.json`` for bench runs and suites.

One entry per (model, data set, defense, threat model, ε) in RobustBench's spirit: clean and robust accuracy
(the worst over the attacks that ran, in %), the attack that found it, ε as written (``8/255``), the number of
test images, the attacks run, how strong that evaluation was (``strong`` / ``iterative`` / ``weak``, the
report's rule) and the trustkit version. A ``weak`` entry is an upper bound, not a robustness claim.
"""
from __future__ import annotations

import json
from typing import Any

import pandas as pd

from trustkit._version import __version__
from trustkit.attacks import format_eps
from trustkit.sanity import evaluation_strength

THREAT_MODEL = {"linf": "Linf", "l2": "L2"}


def robustbench_entries(results: pd.DataFrame) -> list[dict[str, Any]]:
    """The entries of ``results.csv`` (see module doc)."""
    entries = []
    if not len(results):
        return entries
    keys = ["model", "dataset", "defense", "norm", "eps"]
    for (model, dataset, defense, norm, eps), group in results.groupby(keys, sort=False):
        worst = group.loc[group["robust_accuracy"].idxmin()]
        entries.append({
            "name": model, "dataset": dataset, "defense": defense, "threat_model": THREAT_MODEL.get(norm, norm),
            "eps": format_eps(float(eps)), "clean_acc": round(100 * float(worst["clean_accuracy"]), 2),
            "robust_acc": round(100 * float(worst["robust_accuracy"]), 2), "attack": worst["attack"],
            "attacks_run": sorted(set(group["attack"])), "evaluation": evaluation_strength(group)["level"],
            "n": int(worst["n"]), "trustkit_version": __version__})
    return entries


def exports(kind: str, tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    """Extra files of a run of study ``kind`` (file name -> text)."""
    attacks = "results.csv" in tables and {"attack", "robust_accuracy", "defense"} <= set(tables["results.csv"].columns)
    if kind in ("bench", "suite", "combined") and attacks:  # combined: its attacks part, when it has one
        return {"robustbench.json": json.dumps(robustbench_entries(tables["results.csv"]), indent=2) + "\n"}
    return {}
