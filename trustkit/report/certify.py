"""The report of a certify study (``trustkit.studies.certify``): certified accuracy against ℓ2 radius with the
radius limit of the chosen N, ACR and abstentions, the published anchor beside our numbers (MNIST), the
consistency check of the certificates under attack, sanity checks and the results table.

:func:`certify_section` is the report's content alone (a section of a combined report, report/combined.py);
:func:`render_certify` wraps it into the full page."""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from trustkit.images import figure_uri, new_figure
from trustkit.report.html import records, render
from trustkit.studies.certify import CertifyConfig
from trustkit.studies.certify_results import ANCHOR, ANCHOR_SOURCE, anchor_rows


def radius_plot(certificates: pd.DataFrame, results: pd.DataFrame, anchor: list[dict[str, Any]]) -> str:
    """Certified accuracy (%) against ℓ2 radius, one line per model × σ; the radius limit of N dashed in the
    line's colour, the published anchor as crosses (data URI)."""
    fig, ax = new_figure(7.6, 4.2)
    top = max(float(certificates["radius"].max()) if len(certificates) else 0.0,
              float(results["radius_limit"].max()) if len(results) else 0.0, 0.5) * 1.08
    grid = np.linspace(0.0, top, 300)
    several = certificates["model"].nunique() > 1
    for (model, sigma), part in certificates.groupby(["model", "sigma"], sort=False):
        correct = part["correct"].astype(bool).to_numpy()
        radius = part["radius"].to_numpy()
        curve = [(correct & (radius >= r)).mean() * 100 for r in grid]
        label = (f"{model} · " if several else "") + f"σ = {sigma:g}"
        line, = ax.plot(grid, curve, label=label)
        limit = results.loc[(results["model"] == model) & (results["sigma"] == sigma), "radius_limit"]
        if len(limit):
            ax.axvline(float(limit.iloc[0]), color=line.get_color(), linestyle="--", linewidth=1)
        points = [a for a in anchor if a["model"] == model and a["sigma"] == sigma]
        if points:
            ax.plot([a["radius"] for a in points], [a["published"] * 100 for a in points], "x",
                    color=line.get_color(), markersize=8)
    ax.set_xlabel("ℓ2 radius (pixel units on [0, 1])")
    ax.set_ylabel("certified accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_xlim(0, top)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="dashed: largest radius N can certify" + ("; ×: published" if anchor else ""),
              title_fontsize=8)
    return figure_uri(fig)


def _config(info: dict[str, Any]) -> CertifyConfig:
    from dataclasses import fields

    names = {f.name for f in fields(CertifyConfig)}
    settings = {k: v for k, v in info["config"].items() if k in names}
    for key in ("models", "sigmas", "radii", "attack_fractions"):
        if isinstance(settings.get(key), list):
            settings[key] = tuple(settings[key])
    return CertifyConfig(**settings)


def _context(info: dict[str, Any], tables: dict[str, pd.DataFrame], checks: list) -> dict[str, Any]:
    results, certificates = tables["results.csv"], tables["certificates.csv"]
    attack = tables["attack.csv"]
    config = _config(info)
    anchor = anchor_rows(certificates, dataset=config.dataset, n=config.n, alpha=config.alpha)
    summary = []
    for (model, sigma), part in results.groupby(["model", "sigma"], sort=False):
        first = part.iloc[0]
        summary.append({"model": model, "entry": first["entry"], "sigma": sigma, "acr": first["acr"],
                        "certified_at_0": part.loc[part["radius"] == 0, "certified_accuracy"].iloc[0]
                        if (part["radius"] == 0).any() else None,
                        "abstentions": int(first["abstentions"]), "abstention_rate": first["abstention_rate"],
                        "smoothed_accuracy": first["smoothed_accuracy"],
                        "predict_abstentions": int(first["predict_abstentions"]),
                        "base_noise_accuracy": first["base_noise_accuracy"],
                        "base_clean_accuracy": first["base_clean_accuracy"], "radius_limit": first["radius_limit"],
                        "n_images": int(first["n_images"])})
    radii = sorted(results["radius"].unique().tolist()) if len(results) else []
    curves = [{"model": s["model"], "sigma": s["sigma"],
               "values": [results.loc[(results["model"] == s["model"]) & (results["sigma"] == s["sigma"])
                                      & (results["radius"] == r), "certified_accuracy"].iloc[0] for r in radii],
               "reachable": [bool(r <= s["radius_limit"]) for r in radii]} for s in summary]
    flagged = [c for c in checks if c.status == "flag"]
    return {"config": info["config"], "title": info["title"], "subtitle": info.get("subtitle", ""),
            "checks": [c.to_dict() for c in checks], "flag_count": len(flagged), "summary": records(summary),
            "radii": radii, "curves": curves, "anchor": records(anchor), "anchor_source": ANCHOR_SOURCE,
            "anchor_sigmas": sorted(ANCHOR), "is_mnist": config.dataset == "mnist" or
            info["config"].get("dataset") == "mnist", "attack": records(attack),
            "plot": radius_plot(certificates, results, anchor) if len(certificates) else None,
            "failures": info.get("failures", [])}


def certify_section(*, info: dict[str, Any], output: Any, tables: dict[str, pd.DataFrame], checks: list) -> str:
    """The certify report's content as an HTML fragment (one section of a combined report)."""
    return render("_certify_section.html.j2", **_context(info, tables, checks))


def render_certify(*, info: dict[str, Any], output: Any, tables: dict[str, pd.DataFrame], checks: list) -> str:
    """The self-contained HTML report of a certify run."""
    return render("certify.html.j2", env=info, run_id=info["run_id"], created=info["created"],
                  config_json=json.dumps(info["config"], indent=2, default=str), device=info["device"],
                  timings=info["timings_seconds"], embedded=False, **_context(info, tables, checks))
