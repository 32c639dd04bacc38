"""The report of a corruptions study (``trustkit.studies.corruptions``): a heat map of accuracy per corruption
type × severity for every model, accuracy against severity per type, the mCE table relative to the named
baseline, one test image under every corruption, the not-comparable label, sanity checks and the results.

:func:`corruptions_section` is the report's content alone (a section of a combined report, report/combined.py);
:func:`render_corruptions` wraps it into the full page."""
from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from trustkit.corruptions.common import CORRUPTIONS, NOT_COMPARABLE, PACKAGE
from trustkit.images import figure_uri, image_uri, new_figure, unpack_images
from trustkit.report.html import records, render

EXAMPLE_SEVERITIES = (1, 3, 5)


def heatmap_plot(part: pd.DataFrame, corruptions: list[str], severities: list[int], clean: float | None) -> str:
    """Accuracy (%) of one model: corruption types (rows, Hendrycks' order) × severities (columns), each cell
    annotated; the clean accuracy in the title (data URI)."""
    import numpy as np

    grid = np.full((len(corruptions), len(severities)), np.nan)
    for _, row in part.iterrows():
        if row["corruption"] in corruptions and row["severity"] in severities:
            grid[corruptions.index(row["corruption"]), severities.index(row["severity"])] = row["accuracy"] * 100
    fig, ax = new_figure(1.6 + 0.75 * len(severities), 1.1 + 0.32 * len(corruptions))
    image = ax.imshow(grid, vmin=0, vmax=100, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(severities)), [str(s) for s in severities])
    ax.set_yticks(range(len(corruptions)), corruptions, fontsize=8)
    ax.set_xlabel("severity")
    for i in range(len(corruptions)):
        for j in range(len(severities)):
            if math.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if grid[i, j] < 60 else "black")
    fig.colorbar(image, ax=ax, label="accuracy (%)", fraction=0.05)
    ax.set_title("clean accuracy " + (f"{clean * 100:.1f}%" if clean is not None else "–"), fontsize=9)
    return figure_uri(fig)


def severity_plot(results: pd.DataFrame, corruptions: list[str]) -> str:
    """Accuracy (%) against severity, one panel per corruption type, one line per model; severity 0 is clean
    (data URI)."""
    columns = min(5, max(1, len(corruptions)))
    rows = max(1, math.ceil(len(corruptions) / columns))
    if rows > 1:
        fig, axes = new_figure(2.3 * columns, 2.0 * rows + 0.3, ncols=columns, nrows=rows, squeeze=False,
                               sharey=True)
    else:
        fig, axes = new_figure(2.3 * columns, 2.0 * rows + 0.3, ncols=columns, squeeze=False)
    clean = results[results["corruption"] == "clean"].set_index("model")["accuracy"]
    for k, name in enumerate(corruptions):
        ax = axes[k // columns][k % columns]
        part = results[results["corruption"] == name]
        for model, found in part.groupby("model", sort=False):
            found = found.sort_values("severity")
            xs, ys = found["severity"].tolist(), (found["accuracy"] * 100).tolist()
            if model in clean.index:
                xs, ys = [0, *xs], [float(clean[model]) * 100, *ys]
            ax.plot(xs, ys, marker="o", markersize=3, label=model)
        ax.set_title(name, fontsize=8)
        ax.set_ylim(-2, 102)
        ax.set_xticks(range(0, 6))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if k // columns == rows - 1 or k + columns >= len(corruptions):
            ax.set_xlabel("severity (0 = clean)", fontsize=7)
        if k % columns == 0:
            ax.set_ylabel("accuracy (%)", fontsize=7)
        if k == 0:
            ax.legend(fontsize=6, loc="lower left")
    for k in range(len(corruptions), rows * columns):
        axes[k // columns][k % columns].axis("off")
    return figure_uri(fig)


def _examples(output: Any, corruptions: list[str], severities: list[int]) -> dict[str, Any]:
    """The first test image, clean and under every corruption at severities 1, 3 and 5 (those that ran)."""
    groups = getattr(output, "groups", {}) or {}
    group = next(iter(groups.values()), None)
    shown = [s for s in EXAMPLE_SEVERITIES if s in severities] or severities[:3]
    found: dict[str, Any] = {"clean": None, "severities": shown, "rows": []}
    if group is None or "example" not in group:
        return found
    found["clean"] = image_uri(unpack_images(group["example"])[0])
    first = next(iter(groups))
    data = {r.cell.corruption: r.data for r in output.finished if r.cell.group == first and "example" in r.data}
    for name in corruptions:
        if name in data:
            images = unpack_images(data[name]["example"])
            found["rows"].append({"corruption": name, "category": CORRUPTIONS.get(name).category,
                                  "images": [image_uri(images[severities.index(s)]) for s in shown]})
    return found


def _context(info: dict[str, Any], output: Any, tables: dict[str, pd.DataFrame], checks: list) -> dict[str, Any]:
    config = info["config"]
    results, summary, ce = tables["results.csv"], tables["summary.csv"], tables["ce.csv"]
    corruptions = [c for c in config.get("corruptions", []) if c in set(results["corruption"])] or \
        [c for c in dict.fromkeys(results["corruption"]) if c != "clean"]
    severities = [int(s) for s in config.get("severities", [1, 2, 3, 4, 5])]
    heatmaps = []
    for model in dict.fromkeys(results["model"]):
        part = results[results["model"] == model]
        clean = part.loc[part["corruption"] == "clean", "accuracy"]
        heatmaps.append({"model": model, "uri": heatmap_plot(part, corruptions, severities,
                                                             float(clean.iloc[0]) if len(clean) else None)})
    ce_table = []
    for name in corruptions:
        part = ce[ce["corruption"] == name]
        ce_table.append({"corruption": name, "category": CORRUPTIONS.get(name).category,
                         "values": [records(part[part["model"] == m])[0] if (part["model"] == m).any() else None
                                    for m in summary["model"]]})
    flagged = [c for c in checks if c.status == "flag"]
    package = config.get("package", {})
    return {"config": config, "title": info["title"], "subtitle": info.get("subtitle", ""),
            "checks": [c.to_dict() for c in checks], "flag_count": len(flagged), "summary": records(summary.copy()),
            "models": list(summary["model"]), "ce_table": ce_table, "heatmaps": heatmaps,
            "severity_plot": severity_plot(results, corruptions) if len(results) and corruptions else None,
            "examples": _examples(output, corruptions, severities), "rows": records(results.copy()),
            "not_comparable": NOT_COMPARABLE, "package_name": PACKAGE,
            "package_version": package.get(PACKAGE, "?") if isinstance(package, dict) else "?",
            "package_versions": package if isinstance(package, dict) else {},
            "failures": info.get("failures", [])}


def corruptions_section(*, info: dict[str, Any], output: Any, tables: dict[str, pd.DataFrame], checks: list) -> str:
    """The corruptions report's content as an HTML fragment (one section of a combined report)."""
    return render("_corruptions_section.html.j2", **_context(info, output, tables, checks))


def render_corruptions(*, info: dict[str, Any], output: Any, tables: dict[str, pd.DataFrame], checks: list) -> str:
    """The self-contained HTML report of a corruptions run."""
    return render("corruptions.html.j2", env=info, run_id=info["run_id"], created=info["created"],
                  config_json=json.dumps(info["config"], indent=2, default=str), device=info["device"],
                  timings=info["timings_seconds"], embedded=False, **_context(info, output, tables, checks))
