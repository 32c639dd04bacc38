"""The report of a calibration study (``trustkit.studies.calibration``): reliability diagrams (clean and adversarial
side by side, with bin counts and the diagonal), confidence histograms, OOD score histograms (in vs out) and ROC
curves, the results and OOD tables, sanity checks.

:func:`calibration_section` is the report's content alone (a section of a combined report, report/combined.py);
:func:`render_calibration` wraps it into the full page."""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from trustkit.calibration.metrics import ECE_FLAG, OVERCONFIDENT_WRONG
from trustkit.calibration.ood import AUROC_FLAG
from trustkit.images import figure_uri, image_uri, new_figure, unpack_images
from trustkit.report.html import records, render

CONDITION_COLOURS = {"clean": "#2563eb", "adversarial": "#dc2626"}
SCORE_TITLES = {"max_softmax": "max softmax probability", "energy": "energy score −E(x) = logsumexp(logits)"}


def _part(table: pd.DataFrame, **where: Any) -> pd.DataFrame:
    mask = np.ones(len(table), dtype=bool)
    for column, value in where.items():
        mask &= (table[column] == value).to_numpy()
    return table[mask]


def reliability_plot(bins: pd.DataFrame, results: pd.DataFrame, model: str) -> str:
    """Reliability diagrams of ``model``, clean and adversarial side by side: accuracy per confidence bin (bars),
    the gap to the bin's mean confidence (hatched), the diagonal of perfect calibration and each bin's image
    count above its bar (data URI)."""
    fig, axes = new_figure(10.0, 4.2, ncols=2)
    for ax, condition in zip(axes, ("clean", "adversarial"), strict=True):
        part = _part(bins, model=model, condition=condition)
        row = _part(results, model=model, condition=condition)
        ax.plot([0, 1], [0, 1], linestyle="--", color="#6b7280", linewidth=1, label="perfect calibration")
        if len(part):
            width = float(part["upper"].iloc[0] - part["lower"].iloc[0])
            centres = ((part["lower"] + part["upper"]) / 2).to_numpy()
            filled = (part["count"] > 0).to_numpy()
            accuracy = part["accuracy"].fillna(0).to_numpy()
            confidence = part["mean_confidence"].to_numpy()
            ax.bar(centres[filled], accuracy[filled], width=width * 0.95, color=CONDITION_COLOURS[condition],
                   alpha=0.75, edgecolor="white", label="accuracy of the bin")
            gap_low = np.minimum(accuracy, confidence)[filled]
            ax.bar(centres[filled], np.abs(confidence - accuracy)[filled], bottom=gap_low, width=width * 0.95,
                   color="none", edgecolor="#f59e0b", hatch="///", linewidth=0.8, label="gap to mean confidence")
            for centre, count, top in zip(centres[filled], part["count"].to_numpy()[filled],
                                          np.maximum(accuracy, confidence)[filled], strict=True):
                ax.text(centre, min(top + 0.02, 1.04), str(int(count)), ha="center", va="bottom", fontsize=6,
                        rotation=90 if len(part) > 12 else 0, color="#374151")
        title = condition
        if len(row):
            r = row.iloc[0]
            title += f": ECE {r['ece'] * 100:.1f}%, accuracy {r['accuracy'] * 100:.1f}%"
        ax.set_title(title, fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.12)
        ax.set_xlabel("confidence (probability of the predicted class)")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    return figure_uri(fig)


def confidence_plot(bins: pd.DataFrame, results: pd.DataFrame, model: str) -> str:
    """Confidence histograms of ``model``, clean and adversarial: images per confidence bin, right answers
    stacked under wrong ones, with the accuracy and the mean confidence as vertical lines (data URI)."""
    fig, axes = new_figure(10.0, 3.4, ncols=2)
    for ax, condition in zip(axes, ("clean", "adversarial"), strict=True):
        part = _part(bins, model=model, condition=condition)
        row = _part(results, model=model, condition=condition)
        if len(part):
            width = float(part["upper"].iloc[0] - part["lower"].iloc[0])
            centres = ((part["lower"] + part["upper"]) / 2).to_numpy()
            count = part["count"].to_numpy()
            right = np.rint(count * part["accuracy"].fillna(0).to_numpy())
            total = max(count.sum(), 1)
            ax.bar(centres, right / total, width=width * 0.95, color="#16a34a", alpha=0.8, label="right")
            ax.bar(centres, (count - right) / total, bottom=right / total, width=width * 0.95, color="#dc2626",
                   alpha=0.8, label="wrong")
        if len(row):
            r = row.iloc[0]
            ax.axvline(r["accuracy"], color="#111827", linestyle="--", linewidth=1, label="accuracy")
            ax.axvline(r["mean_confidence"], color="#2563eb", linestyle=":", linewidth=1.5, label="mean confidence")
        ax.set_xlim(0, 1)
        ax.set_title(condition, fontsize=10)
        ax.set_xlabel("confidence")
        ax.set_ylabel("fraction of images")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    return figure_uri(fig)


def ood_plot(data: dict[str, Any], in_name: str, ood_name: str) -> str:
    """For one model and OOD set: the histograms of both scores on the test images and on the OOD images, and
    both ROC curves (in-distribution positive), with the chance diagonal (data URI)."""
    fig, axes = new_figure(13.5, 3.6, ncols=3)
    for ax, (score, histogram) in zip(axes[:2], data["histograms"].items(), strict=False):
        edges = np.asarray(histogram["edges"])
        centres, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
        for key, label, colour in (("in", f"{in_name} (test)", "#2563eb"), ("out", ood_name, "#dc2626")):
            counts = np.asarray(histogram[key], dtype=float)
            ax.bar(centres, counts / max(counts.sum(), 1), width=width, alpha=0.5, color=colour, label=label)
        ax.set_xlabel(SCORE_TITLES.get(score, score) + " (higher = in-distribution)", fontsize=8)
        ax.set_ylabel("fraction of images")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax = axes[2]
    ax.plot([0, 1], [0, 1], linestyle="--", color="#6b7280", linewidth=1, label="chance")
    for score, curve in data["roc"].items():
        auroc = next((r["auroc"] for r in data["rows"] if r["score"] == score), float("nan"))
        ax.plot(curve["fpr"], curve["tpr"], label=f"{score} (AUROC {auroc:.3f})")
    ax.set_xlabel(f"false-positive rate ({ood_name} accepted)")
    ax.set_ylabel(f"true-positive rate ({in_name} accepted)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return figure_uri(fig)


def _context(info: dict[str, Any], output: Any, tables: dict[str, pd.DataFrame], checks: list) -> dict[str, Any]:
    results, bins, ood = tables["results.csv"], tables["reliability.csv"], tables["ood.csv"]
    config = info["config"]
    dataset = config.get("dataset", "")
    groups = getattr(output, "groups", {}) or {}
    finished = [r for r in getattr(output, "records", []) if r.data is not None]
    models = []
    for name in dict.fromkeys(list(config.get("models") or []) + list(results["model"].unique())):
        display = groups.get(name, {}).get("model", name)
        if display in [m["model"] for m in models]:
            continue
        rows = _part(results, model=display)
        shown = {"model": display, "rows": records(rows.copy()), "ood": []}
        if len(rows):
            shown["reliability"] = reliability_plot(bins, results, display)
            shown["confidence"] = confidence_plot(bins, results, display)
        for record in finished:
            cell = record.cell
            if getattr(cell, "ood", None) is None or cell.model != name:
                continue
            shown["ood"].append({"name": cell.ood, "conversion": record.data["conversion"],
                                 "plot": ood_plot(record.data, dataset, cell.ood),
                                 "examples": [image_uri(img) for img in unpack_images(record.data["examples"])],
                                 "rows": records(_part(ood, model=display, ood_dataset=cell.ood).copy())})
        if len(rows) or shown["ood"]:
            models.append(shown)
    summary = []
    for m in models:
        by = {r["condition"]: r for r in m["rows"]}
        aurocs = [r["auroc"] for o in m["ood"] for r in o["rows"] if r["auroc"] is not None]
        summary.append({"model": m["model"], "clean": by.get("clean"), "adversarial": by.get("adversarial"),
                        "worst_auroc": min(aurocs) if aurocs else None})
    flagged = [c for c in checks if c.status == "flag"]
    return {"config": config, "title": info["title"], "subtitle": info.get("subtitle", ""),
            "checks": [c.to_dict() for c in checks], "flag_count": len(flagged), "models": models,
            "summary": summary, "results": records(results.copy()), "ood_rows": records(ood.copy()),
            "ece_flag": ECE_FLAG, "overconfident": OVERCONFIDENT_WRONG, "auroc_flag": AUROC_FLAG,
            "failures": info.get("failures", [])}


def calibration_section(*, info: dict[str, Any], output: Any, tables: dict[str, pd.DataFrame], checks: list) -> str:
    """The calibration report's content as an HTML fragment (one section of a combined report)."""
    return render("_calibration_section.html.j2", **_context(info, output, tables, checks))


def render_calibration(*, info: dict[str, Any], output: Any, tables: dict[str, pd.DataFrame], checks: list) -> str:
    """The self-contained HTML report of a calibration run."""
    return render("calibration.html.j2", env=info, run_id=info["run_id"], created=info["created"],
                  config_json=json.dumps(info["config"], indent=2, default=str), device=info["device"],
                  timings=info["timings_seconds"], **_context(info, output, tables, checks))
