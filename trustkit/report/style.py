"""The report of a style-transfer study: content, style and result side by side per cell, the loss curves, the
content/style trade-off over style weights, the layers used, results and checks (``trustkit.studies.style``)."""
from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from trustkit.images import figure_uri, image_uri, new_figure, unpack_images
from trustkit.report.html import records, render
from trustkit.studies.style import RESULT_COLUMNS


def _label(row: dict[str, Any]) -> str:
    return f"{row['content']} × {row['style']}, β {row['style_weight']:g}"


def _log_axis(ax, axis: str) -> None:  # noqa: ANN001 - matplotlib axes
    """A log scale labelled 0.01, 0.1, 1 (new_figure turns mathtext off, so the default 10^k labels would
    print as raw TeX)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    getattr(ax, f"set_{axis}scale")("log")
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    target.set_minor_formatter(NullFormatter())


def loss_curves(traces: list[tuple[str, dict[str, list[float]]]]) -> str:
    """Content and style loss against the step, one line per cell (log scale; data URI)."""
    fig, axes = new_figure(10.0, 3.6, ncols=2)
    for ax, key, title in zip(axes, ("content", "style"), ("content loss (relative error)", "style loss (relative "
                                                                                          "error)"), strict=True):
        for label, trace in traces:
            values = [v if v > 0 else float("nan") for v in trace[key]]  # 0 (the content start) has no log
            ax.plot(range(len(values)), values, label=label)
        _log_axis(ax, "y")
        ax.set_xlabel("step")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    return figure_uri(fig)


def trade_off(results: pd.DataFrame) -> str | None:
    """Final content loss against final style loss, one line per (content, style) pair through its style weights
    (data URI); None with fewer than two weights."""
    if len(results) == 0 or results["style_weight"].nunique() < 2:
        return None
    fig, ax = new_figure(6.4, 4.0)
    for (content, style), rows in results.groupby(["content", "style"], sort=False):
        rows = rows.sort_values("style_weight")
        ax.plot(rows["style_loss"].clip(lower=1e-12), rows["content_loss"].clip(lower=1e-12), marker="o",
                label=f"{content} × {style}")
        for row in rows.itertuples():
            ax.annotate(f"β {row.style_weight:g}", (max(row.style_loss, 1e-12), max(row.content_loss, 1e-12)),
                        fontsize=7, textcoords="offset points", xytext=(4, 4))
    _log_axis(ax, "x")
    _log_axis(ax, "y")
    ax.set_xlabel("final style loss (lower: more like the style)")
    ax.set_ylabel("final content loss (lower: more like the content)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure_uri(fig)


def _notes(group: dict[str, Any]) -> list[str]:
    notes = []
    if group.get("random_weights"):
        notes.append(f"{group['model']} has random weights (no weights file was given): its features are those of an "
                     "untrained network. Random convolutional features still capture textures (Ustyuzhaninov et al. "
                     "2017) but not the painterly style of Gatys et al., who used VGG-19 trained on ImageNet; give "
                     "--weights FILE.safetensors for that.")
    elif group.get("random_weights") is None and group.get("model"):
        notes.append(f"trustkit cannot tell whether {group['model']} is trained (a Python object or code): if its "
                     "weights are random, so are its features.")
    if group.get("tiny"):
        shape = "×".join(map(str, group.get("input_shape", [])[1:]))
        notes.append(f"{group['model']} is a small model ({group.get('parameters', 0):,} parameters, built for "
                     f"{shape} images): its filters see only a few pixels of an image drawn at this size, so what "
                     "it transfers is fine texture and local contrast, not brush strokes. Gatys et al.'s results "
                     "need a large ImageNet network (torchvision:vgg19 with its weights as safetensors).")
    if group.get("channels") == 1:
        notes.append("The model takes grey images, so the content, the style and the result are grey.")
    notes += group.get("notes", [])
    return notes


def render_style(*, info: dict[str, Any], output: Any, tables: dict[str, pd.DataFrame], checks: list) -> str:
    """The self-contained HTML report of a style-transfer run (``trustkit.studies.style``)."""
    results = tables["results.csv"]
    defaults = {"model": info["config"].get("model"), "source": None, "dataset": None, "parameters": None,
                "random_weights": False, "tiny": False, "channels": None, "input_shape": [], "layers": [], "notes": []}
    group = {**defaults, **next(iter(output.groups.values()), {})}  # a failed group still renders
    cells, traces = [], []
    for record in output.finished:
        content, style, result = unpack_images(record.data["images"])
        row = record.data["row"]
        cells.append({"title": record.cell.title(), "content_uri": image_uri(content), "style_uri": image_uri(style),
                      "result_uri": image_uri(result), **{k: (None if isinstance(v, float) and not math.isfinite(v)
                                                             else v) for k, v in row.items()}})
        traces.append((_label(row), record.data["trace"]))
    return render(
        "style.html.j2", env=info, run_id=info["run_id"], created=info["created"], config=info["config"],
        config_json=json.dumps(info["config"], indent=2, default=str), device=info["device"],
        timings=info["timings_seconds"], title=info["title"], subtitle=info["subtitle"], cells=cells,
        curves=loss_curves(traces) if traces else None, trade_off=trade_off(results),
        rows=records(results[RESULT_COLUMNS]), layers=group.get("layers", []), group=group, notes=_notes(group),
        checks=[c.to_dict() for c in checks], flag_count=sum(c.status == "flag" for c in checks),
        failures=info.get("failures", []))
