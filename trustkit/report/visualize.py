"""The report of a maximisation study (:mod:`trustkit.studies.visualize`): the maximised images as a grid (one
row per model, one column per class or channel, side by side), the objective against the step per model, the
results table, the models, the sanity checks and the run's configuration."""
from __future__ import annotations

import json
from typing import Any

import pandas as pd

from trustkit.images import figure_uri, image_uri, new_figure, unpack_images
from trustkit.report.html import records, render

TARGET_TITLES = {"class": "Class-score maximisation", "feature": "Feature visualisation"}


def _cells_by_model(output: Any) -> dict[str, list[Any]]:
    by_model: dict[str, list[Any]] = {}
    for record in output.finished:
        by_model.setdefault(record.cell.model, []).append(record)
    return by_model


def _grid(output: Any, target: str) -> dict[str, Any]:
    """Columns (class names or channels) and one row per model of images with their numbers."""
    groups = output.groups
    rows, columns = [], []
    for model, found in _cells_by_model(output).items():
        chosen = [r for r in found if r.cell.target == target]
        if not chosen:
            continue
        group = groups.get(model, {})
        items = []
        for record in chosen:
            row = record.data["rows"][0]
            column = row["class_name"]
            if column not in columns and column != "real":
                columns.append(column)
            items.append({"column": column, "uri": image_uri(unpack_images(record.data["image"])[0]), **row})
        rows.append({"name": group.get("name", model), "role": group.get("role", ""), "items": items,
                     "layer": chosen[0].data["rows"][0]["layer"]})
    for row in rows:  # align every model's images under the shared columns; a real/fake head fills the first
        by_column = {item["column"]: item for item in row["items"]}
        if set(by_column) == {"real"}:
            row["cells"] = [by_column["real"]] + [None] * (max(len(columns), 1) - 1)
        else:
            row["cells"] = [by_column.get(column) for column in columns]
    return {"columns": columns or ["real"], "rows": rows}


def display_size(side: int, target: int = 72) -> int:
    """CSS pixels to show an image of ``side`` pixels at: a whole multiple of its side near ``target``, so
    pixelated upscaling draws every image pixel the same size."""
    return side * max(1, target // max(side, 1))


def trace_figure(output: Any, target: str) -> str | None:
    """The objective (logit or mean activation) against the step, one panel per model, one line per class or
    channel; the dashed line of the same colour is the objective's mean over real test images (a class logit:
    over images of that class)."""
    by_model = {m: [r for r in found if r.cell.target == target] for m, found in _cells_by_model(output).items()}
    by_model = {m: found for m, found in by_model.items() if found}
    if not by_model:
        return None
    count = len(by_model)
    fig, axes = new_figure(min(4.2 * count, 16.0), 3.4, ncols=count)
    axes = list(axes) if count > 1 else [axes]
    import matplotlib

    colours = matplotlib.colormaps["tab10"]
    for ax, (model, found) in zip(axes, by_model.items()):
        group = output.groups.get(model, {})
        for position, record in enumerate(found):
            row = record.data["rows"][0]
            colour = colours(position % 10)
            ax.plot(range(len(record.data["trace"])), record.data["trace"], color=colour, linewidth=1.2,
                    label=str(row["class_name"]))
            real = row.get("real_mean")
            if real is not None and real == real:  # NaN: no real image of the class in the sample
                ax.axhline(real, color=colour, linestyle="--", linewidth=0.7, alpha=0.6)
        ax.set_title(f"{group.get('name', model)}\n({group.get('role', '')})", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("logit" if target == "class" else f"mean activation of {found[0].data['rows'][0]['layer']}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2, title="class" if target == "class" else "channel", title_fontsize=7)
    return figure_uri(fig)


def render_maximize(*, info: dict[str, Any], output: Any, tables: dict[str, pd.DataFrame], checks: list) -> str:
    """The self-contained HTML report of a maximisation run (:mod:`trustkit.studies.visualize`)."""
    results = tables["results.csv"]
    targets = [t for t in ("class", "feature") if len(results) and (results["target"] == t).any()]
    sections = [{"target": t, "title": TARGET_TITLES[t], "grid": _grid(output, t), "plot": trace_figure(output, t)}
                for t in targets]
    models = [dict(g) for g in output.groups.values()]
    first = next(iter(output.finished), None)
    side = unpack_images(first.data["image"]).shape[-1] if first is not None else 8
    classes = results[(results["target"] == "class") & (results["class_name"] != "real")] if len(results) else results
    summary = {"cells": len(results), "models": len(models),
               "predicted": int((classes["predicted"] == classes["class_name"]).sum()) if len(classes) else 0,
               "class_cells": len(classes),
               "median_gain": float(results["gain"].median()) if len(results) else None}
    return render(
        "visualize.html.j2", env=info, run_id=info["run_id"], created=info["created"], config=info["config"],
        config_json=json.dumps(info["config"], indent=2, default=str), device=info["device"],
        timings=info["timings_seconds"], title=info["title"], subtitle=info["subtitle"], sections=sections,
        rows=records(results), models=records(models), checks=[c.to_dict() for c in checks],
        flag_count=sum(c.status == "flag" for c in checks), summary=summary, image_size=display_size(side),
        failures=info.get("failures", []))
