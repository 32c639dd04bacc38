"""Matplotlib figures for reports, returned as embedded PNG data URIs."""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from trustkit.attacks.base import format_eps
from trustkit.images import figure_uri, new_figure  # noqa: F401 - the figure helpers every plot here uses


def accuracy_vs_eps(results: pd.DataFrame, bands: bool = True) -> str:
    """Robust accuracy (%) against epsilon, one line per (model, attack, norm); clean accuracy at eps 0.

    ``bands`` shades the 95% interval where the frame has ``robust_ci_low``/``robust_ci_high``.
    """
    fig, ax = new_figure()
    keys = [k for k in ("model", "dataset", "defense", "evaluation", "attack", "engine", "norm") if k in results.columns]
    varying = [k for k in ("model", "dataset", "defense") if k in results.columns and results[k].nunique() > 1]
    for _, group in results.groupby(keys, sort=False):
        ordered = group.sort_values("eps")
        first = ordered.iloc[0]
        eps = [0.0, *ordered["eps"]]
        accuracy = [first["clean_accuracy"] * 100, *(ordered["robust_accuracy"] * 100)]
        engine = f", {first['engine']}" if first.get("engine", "trustkit") != "trustkit" else ""
        evaluation = first.get("evaluation", "standard")
        label = f"{first['attack']} ({first['norm']}{engine})" + ("" if evaluation in ("standard", None) else f" · {evaluation}")
        if varying:
            label = " / ".join(str(first[k]) for k in varying) + f": {label}"
        line, = ax.plot(eps, accuracy, marker="o", label=label)
        if bands and "robust_ci_low" in ordered:
            ax.fill_between(ordered["eps"], ordered["robust_ci_low"] * 100, ordered["robust_ci_high"] * 100,
                            color=line.get_color(), alpha=0.15, linewidth=0)
    ticks = sorted({0.0, *results["eps"]})
    ax.set_xticks(ticks, [format_eps(t) if t else "0" for t in ticks])
    ax.set_xlabel("epsilon (perturbation budget)")
    ax.set_ylabel("accuracy under attack (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(title="shaded: 95% interval" if bands and "robust_ci_low" in results else None, fontsize=8)
    return figure_uri(fig)


def surviving_fraction(norms: Sequence[float | None], eps: float) -> float:
    """Fraction of images whose smallest adversarial example found is larger than ``eps`` (None: none found)."""
    return sum(n is None or n > eps for n in norms) / max(len(norms), 1)


def minimal_perturbation_curve(curves: dict[str, dict], grid: dict[str, list[tuple[float, float]]]) -> str:
    """Robust accuracy (%) against epsilon from each minimum-norm search's per-image minimal perturbation (a
    step curve over every epsilon at once), with the bench's own cells (projection onto each ball) as dots.

    ``curves`` maps a label (attack and norm) to ``{"norms": [...], "norm": ...}``; ``grid`` the label to
    its cells' (eps, robust accuracy).
    """
    fig, ax = new_figure()
    top = 0.0
    for label, curve in curves.items():
        found = sorted(n for n in curve["norms"] if n is not None)
        top = max(top, found[-1] if found else 0.0, *(e for e, _ in grid.get(label, [])))
    top = top * 1.05 or 1.0
    for label, curve in curves.items():
        norms = curve["norms"]
        points = sorted({0.0, top, *(n for n in norms if n is not None)})
        line, = ax.step(points, [100 * surviving_fraction(norms, e) for e in points], where="post",
                        label=f"{label}, median {_median_label(norms)}")
        cells = grid.get(label, [])
        if cells:
            ax.plot([e for e, _ in cells], [100 * r for _, r in cells], "o", color=line.get_color())
    ax.set_xlabel("epsilon (size of the smallest adversarial example found, pixel scale)")
    ax.set_ylabel("images still classified correctly (%)")
    ax.set_ylim(-2, 102)
    ax.set_xlim(0, top)
    ax.grid(alpha=0.3)
    ax.legend(title="line: one search; dots: the grid's cells", fontsize=8)
    return figure_uri(fig)


def _median_label(norms: Sequence[float | None]) -> str:
    ordered = sorted(float("inf") if n is None else n for n in norms)
    middle = ordered[len(ordered) // 2] if ordered else float("nan")
    return "none found" if middle == float("inf") else f"{middle:.3g}"


def per_class_heatmap(per_class: pd.DataFrame, class_names: Sequence[str], title: str) -> str:
    """Heat map of robust accuracy (%) per class (rows) and epsilon (columns)."""
    table = per_class.pivot_table(index="class_index", columns="eps", values="robust_accuracy") * 100
    fig, ax = new_figure(1.6 + 0.9 * len(table.columns), 0.9 + 0.32 * len(table.index))
    image = ax.imshow(table.values, cmap="RdYlGn", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(table.columns)), [format_eps(e) for e in table.columns])
    ax.set_yticks(range(len(table.index)), [class_names[i] for i in table.index])
    for (row, col), value in pd.DataFrame(table.values).stack().items():
        ax.text(col, row, f"{value:.0f}", ha="center", va="center", fontsize=8)
    ax.set_xlabel("epsilon")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, label="robust accuracy (%)")
    return figure_uri(fig)


_figure, _to_uri = new_figure, figure_uri  # former private names, still imported by some modules
