"""The report of a membership study (``trustkit.studies.membership``): each attack's ROC on log-log axes, AUC
and TPR at low FPR (or at 0 false positives where the non-members cannot resolve the rate), the published
anchor, the target and shadow models, sanity checks.

:func:`membership_section` is the content alone (a section of a combined report, e.g. ``trustkit privacy audit
--shadow-models K``); :func:`render_membership` wraps it into the full page."""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from trustkit.images import figure_uri, new_figure
from trustkit.privacy.membership import LOW_FPRS, roc_points
from trustkit.report.html import records, render
from trustkit.studies.membership import ANCHOR

STYLES = ("-", (0, (5, 2)), "-.", ":", (0, (1, 1)))


def roc_plot(scores: pd.DataFrame, results: pd.DataFrame) -> str:
    """Every attack's empirical ROC on log-log axes (TPR against FPR, both from 1/N to 1), the chance diagonal,
    the 1% and 0.1% FPR lines and the published LiRA anchor's operating point (data URI)."""
    member = scores["member"].astype(bool).to_numpy()
    floor = 1.0 / max(int((~member).sum()), 1)
    fig, ax = new_figure(6.0, 4.6)
    grid = np.logspace(np.log10(floor), 0, 200)
    ax.plot(grid, grid, linestyle="--", color="grey", linewidth=1, label="chance")
    auc = dict(zip(results["attack"], results["auc"], strict=True))
    for k, attack in enumerate(results["attack"]):
        values = scores[f"score_{attack}"].to_numpy()
        fpr, tpr, _ = roc_points(values[member], values[~member])
        ax.step(np.maximum(fpr, floor), np.maximum(tpr, floor / 10), where="post", linestyle=STYLES[k % len(STYLES)],
                linewidth=1.6, label=f"{attack} (AUC {auc[attack]:.3f})")
    for level in LOW_FPRS:
        if level >= floor:
            ax.axvline(level, color="lightgrey", linewidth=0.8, zorder=0)
    ax.plot([0.001], [ANCHOR["tpr_at_0_1pct_fpr"]], "kx", markersize=8,
            label=f"published LiRA, CIFAR-10 {ANCHOR['model']} (TPR {ANCHOR['tpr_at_0_1pct_fpr']:.2%} @ 0.1%)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(floor / 10, 1.05)
    ax.set_xlabel("false-positive rate (non-members called members)")
    ax.set_ylabel("true-positive rate (members found)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=7)
    return figure_uri(fig)


def _context(info: dict[str, Any], tables: dict[str, pd.DataFrame], checks: list) -> dict[str, Any]:
    results, scores, models = tables["results.csv"], tables["scores.csv"], tables["models.csv"]
    flagged = [c for c in checks if c.status == "flag"]
    shadows = models[models["role"] == "shadow"]
    target = models[models["role"] == "target"]
    return {"config": info["config"], "title": info["title"], "subtitle": info.get("subtitle", ""),
            "checks": [c.to_dict() for c in checks], "flag_count": len(flagged), "results": records(results),
            "models": records(models), "anchor": ANCHOR, "failures": info.get("failures", []),
            "target": records(target)[0] if len(target) else None,
            "shadow_seconds": float(shadows["seconds"].median()) if len(shadows) else None,
            "shadow_count": len(shadows), "device": info.get("device", ""),
            "plot": roc_plot(scores, results) if len(results) and len(scores) else None}


def membership_section(*, info: dict[str, Any], output: Any, tables: dict[str, pd.DataFrame], checks: list) -> str:
    """The membership report's content as an HTML fragment (one section of a combined report)."""
    return render("_membership_section.html.j2", **_context(info, tables, checks))


def render_membership(*, info: dict[str, Any], output: Any, tables: dict[str, pd.DataFrame], checks: list) -> str:
    """The self-contained HTML report of a membership run."""
    return render("membership.html.j2", env=info, run_id=info["run_id"], created=info["created"],
                  config_json=json.dumps(info["config"], indent=2, default=str),
                  timings=info["timings_seconds"], embedded=False, **_context(info, tables, checks))
