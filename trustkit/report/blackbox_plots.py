"""Figures of black-box evaluations (embedded PNG data URIs): success against queries, transfer heat maps,
substitute agreement against queries."""
from __future__ import annotations

import bisect
import math
from typing import Any, Sequence

import pandas as pd

from trustkit.attacks.base import format_eps
from trustkit.report.plots import (  # the report package's figure helpers (Agg, PNG URI)
    _figure,
    _to_uri,
)


def success_at(curve: dict[str, Any], budget: int) -> float:
    """Success rate (fraction of clean-correct images fooled) within ``budget`` queries per image."""
    if not curve["clean_correct"]:
        return float("nan")
    return bisect.bisect_right(curve["success_queries"], budget) / curve["clean_correct"]


def success_vs_queries(curves: Sequence[dict[str, Any]]) -> str:
    """Step plot of success rate (%) against queries per image (log scale), one line per entry of ``curves``
    (each: ``label`` and a ``query_curve`` as recorded by ``trustkit.attacks.evaluate.query_summary``)."""
    fig, ax = _figure(6.4, 3.8)
    largest = 1
    for entry in curves:
        curve = entry["query_curve"]
        points = sorted(set(curve["success_queries"]))
        end = max([curve.get("budget") or 0, *points, 1])
        largest = max(largest, end)
        xs = [1, *points, end]
        ys = [success_at(curve, q) * 100 for q in xs]
        ax.step(xs, ys, where="post", label=entry["label"])
    ax.set_xscale("log")
    ax.set_xlim(1, largest * 1.05)
    ax.set_ylim(-2, 102)
    ax.set_xlabel("queries per image (budget)")
    ax.set_ylabel("attack success rate (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _to_uri(fig)


def transfer_heatmap(matrix: pd.DataFrame, title: str) -> str:
    """Heat map of transfer success (%): crafting models (rows) × target models (columns); values in [0, 1]."""
    table = matrix * 100
    fig, ax = _figure(2.4 + 1.1 * len(table.columns), 1.2 + 0.45 * len(table.index))
    image = ax.imshow(table.values.astype(float), cmap="Reds", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(table.columns)), list(table.columns))
    ax.set_yticks(range(len(table.index)), list(table.index))
    for row in range(table.shape[0]):
        for col in range(table.shape[1]):
            value = table.values[row, col]
            if not math.isnan(value):
                ax.text(col, row, f"{value:.0f}", ha="center", va="center", fontsize=9,
                        color="white" if value > 60 else "black")
    ax.set_xlabel("target (judged) model")
    ax.set_ylabel("crafted on")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, label="success on target (%)")
    return _to_uri(fig)


def agreement_vs_queries(history: Sequence[dict[str, Any]]) -> str:
    """Substitute agreement with the target (%) and substitute accuracy (%) after each training round,
    against the oracle queries spent so far."""
    fig, ax = _figure(6.0, 3.6)
    queries = [h["queries"] for h in history]
    ax.plot(queries, [h["agreement"] * 100 for h in history], marker="o", label="agreement with the target")
    ax.plot(queries, [h["substitute_accuracy"] * 100 for h in history], marker="s", linestyle="--",
            label="substitute accuracy (true labels)")
    ax.set_xscale("log")
    ax.set_ylim(-2, 102)
    ax.set_xlabel("oracle queries (labels asked for)")
    ax.set_ylabel("%")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _to_uri(fig)


def success_vs_eps(frame: pd.DataFrame, label_keys: Sequence[str] = ("attack",)) -> str:
    """Transfer success (%) against epsilon, one line per group of ``label_keys`` (frame: eps, success_rate)."""
    fig, ax = _figure(6.0, 3.6)
    for key, group in frame.groupby(list(label_keys), sort=False):
        ordered = group.sort_values("eps")
        label = " · ".join(str(k) for k in (key if isinstance(key, tuple) else (key,)))
        ax.plot(ordered["eps"], ordered["success_rate"] * 100, marker="o", label=label)
    ticks = sorted(set(frame["eps"]))
    ax.set_xticks(ticks, [format_eps(t) for t in ticks])
    ax.set_ylim(-2, 102)
    ax.set_xlabel("epsilon (perturbation budget)")
    ax.set_ylabel("success on the target (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _to_uri(fig)
