"""The privacy audit's report folder: ``reports/<run-id>/`` with report.html (self-contained), results.csv
(one row per layer × attack × mitigation, plus the mean-image baseline and the originals), layers.csv (risk
rating per layer), membership.csv, model_inversion.csv and run.json; built in a temporary folder and renamed
into place only when complete."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F

from trustkit.rundir import write_run_folder
from trustkit.report.html import records, render
from trustkit.images import image_uri
from trustkit.images import figure_uri, new_figure

GALLERY_COLUMNS = 8
ATTACK_COLOURS = {"white-box": "#1f77b4", "inverse-net": "#d62728", "gen-prior": "#2ca02c"}


def strip_uri(images: torch.Tensor, min_side: int = 64) -> str:
    """One PNG of up to ``GALLERY_COLUMNS`` images side by side (nearest-neighbour upscaled to ``min_side``)."""
    images = images[:GALLERY_COLUMNS].float().clamp(0, 1)
    scale = max(1, math.ceil(min_side / images.shape[-1]))
    if scale > 1:
        images = F.interpolate(images, scale_factor=scale, mode="nearest")
    gap = torch.ones(images.shape[1], images.shape[2], 2)
    parts = []
    for image in images:
        parts += [image, gap]
    return image_uri(torch.cat(parts[:-1], dim=2))



def leakage_figure(results: pd.DataFrame, chance: float, what: str) -> str:
    """PSNR, SSIM and re-identification top-1 per layer (x: layers in forward order), one line per attack, with
    the mean-image baseline (dashed), SSIM 0.3 (dotted) and chance (dotted)."""
    plain = results[(results["kind"] == "attack") & (results["mitigation"] == "none")]
    baseline = results[results["kind"] == "baseline"].iloc[0]
    layers = plain.sort_values("layer_order")["layer"].drop_duplicates().tolist()
    fig, axes = new_figure(12.0, 3.6, ncols=3)
    metrics = (("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("reid_top1", f"re-id top-1 ({what})"))
    for ax, (metric, label) in zip(axes, metrics):
        for attack, group in plain.groupby("attack", sort=False):
            group = group.set_index("layer").reindex(layers)
            ax.plot(range(len(layers)), group[metric], marker="o", label=attack, color=ATTACK_COLOURS.get(attack))
        ax.axhline(baseline[metric], color="grey", linestyle="--", linewidth=1, label="mean image")
        if metric == "ssim":
            ax.axhline(0.3, color="black", linestyle=":", linewidth=1, label="SSIM 0.3 (He et al.)")
        if metric == "reid_top1":
            ax.axhline(chance, color="black", linestyle=":", linewidth=1, label=f"chance {chance:.1%}")
            ax.set_ylim(-0.02, 1.02)
        ax.set_xticks(range(len(layers)))
        ax.set_xticklabels(layers, rotation=30)
        ax.set_ylabel(label)
        ax.set_xlabel("layer (shallow → deep)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    axes[2].legend(fontsize=8)
    return figure_uri(fig)


def mitigation_figure(results: pd.DataFrame, what: str) -> str | None:
    """Privacy/utility: model accuracy with the mitigation (x) against white-box / inverse-net SSIM and re-id
    top-1 (y), one marker per mitigation, the unmitigated layer as a star."""
    mitigated = results[(results["kind"] == "attack") & (results["mitigation"] != "none")]
    if mitigated.empty:
        return None
    layer = mitigated["layer"].iloc[0]
    plain = results[(results["kind"] == "attack") & (results["mitigation"] == "none") & (results["layer"] == layer)]
    fig, axes = new_figure(10.0, 3.8, ncols=2)
    for ax, (metric, label) in zip(axes, (("ssim", "SSIM of the reconstruction"), ("reid_top1", f"re-id top-1 ({what})"))):
        for attack, group in mitigated.groupby("attack", sort=False):
            colour = ATTACK_COLOURS.get(attack)
            ax.scatter(group["utility_accuracy"] * 100, group[metric], color=colour, label=attack)
            for _, row in group.iterrows():
                ax.annotate(row["mitigation"], (row["utility_accuracy"] * 100, row[metric]), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
            base = plain[plain["attack"] == attack]
            if len(base):
                ax.scatter(base["utility_accuracy"] * 100, base[metric], color=colour, marker="*", s=140,
                           edgecolor="black", label=f"{attack}, no mitigation")
        ax.set_xlabel(f"utility: accuracy with the mitigation at {layer} (%)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return figure_uri(fig)


def _galleries(result: Any) -> list[dict[str, Any]]:
    galleries = []
    layer_order = result.layers.sort_values("layer_order")
    attacks = result.config.attacks
    original = strip_uri(result.victims)
    plain = result.results[(result.results["kind"] == "attack") & (result.results["mitigation"] == "none")]
    for _, layer in layer_order.iterrows():
        strips = [{"label": "original", "uri": original, "psnr": None, "ssim": None}]
        for attack in attacks:
            images = result.reconstructions.get((layer["layer"], attack))
            if images is None:
                continue
            row = plain[(plain["layer"] == layer["layer"]) & (plain["attack"] == attack)].iloc[0]
            strips.append({"label": attack, "uri": strip_uri(images), "psnr": row["psnr"], "ssim": row["ssim"]})
        galleries.append({"layer": layer["layer"], "risk": layer["risk"], "shape": layer["feature_shape"],
                          "strips": strips})
    return galleries


def _membership_section(result: Any) -> dict[str, Any]:
    if result.membership_result is None:
        return {"available": False, "note": result.info["membership_note"], "rows": [], "roc": None}
    try:
        from trustkit.privacy.membership import roc_figure

        roc = roc_figure(result.membership_result)
    except Exception as exc:  # noqa: BLE001 - the other half of the audit must still render
        roc, result.info["membership_note"] = None, f"ROC figure failed ({type(exc).__name__}: {exc})"
    return {"available": True, "note": result.info["membership_note"], "rows": records(result.membership), "roc": roc}


def _model_inversion_section(result: Any) -> dict[str, Any]:
    if result.model_inversion_result is None:
        return {"available": False, "note": result.info["model_inversion_note"], "rows": [], "gallery": None}
    try:
        from trustkit.privacy.model_inversion import gallery_figure

        gallery = gallery_figure(result.model_inversion_result, real_means=result.real_means)
    except Exception as exc:  # noqa: BLE001
        gallery, result.info["model_inversion_note"] = None, f"gallery failed ({type(exc).__name__}: {exc})"
    return {"available": True, "note": result.info["model_inversion_note"], "rows": records(result.model_inversion),
            "gallery": gallery}


def write_audit_report(result: Any) -> Path:
    """Write ``<out>/<run-id>/`` for an :class:`~trustkit.privacy.audit.AuditResult`; returns the folder."""
    config = result.config
    out = Path(config.out)
    frame = result.results
    dataset = frame["dataset"].iloc[0]
    model = frame["model"].iloc[0]
    reid = result.info["reid"]
    baseline = frame[frame["kind"] == "baseline"].iloc[0]
    mitigated = frame[(frame["kind"] == "attack") & (frame["mitigation"] != "none")]
    context = {
        "layers": records(result.layers), "rows": records(frame[frame["kind"] == "attack"]),
        "baseline": records(frame[frame["kind"] == "baseline"])[0],
        "original": records(frame[frame["kind"] == "original"])[0],
        "galleries": _galleries(result),
        "leakage_plot": leakage_figure(frame, reid["chance"], reid["what"]),
        "mitigation_plot": mitigation_figure(frame, reid["what"]),
        "mitigation_rows": records(mitigated),
        "mitigation_layer": mitigated["layer"].iloc[0] if len(mitigated) else None,
        "mitigation_strip": [{"label": name, "uri": strip_uri(images)} for name, images in result.mitigation_images.items()],
        "membership": _membership_section(result), "model_inversion": _model_inversion_section(result),
        "reid": reid, "checks": [c.to_dict() for c in result.checks],
        "flag_count": sum(c.status == "flag" for c in result.checks),
        "clean_accuracy": result.info["clean_accuracy"], "attack_params": result.info["attack_params"],
        "n": int(frame["n"].iloc[0]), "model": model, "dataset": dataset, "baseline_ssim": float(baseline["ssim"]),
    }
    context["highest_risk"] = max(result.layers["risk"], key=lambda r: {"low": 0, "medium": 1, "high": 2}[r])
    extra = {k: v for k, v in result.info.items() if k not in ("config", "device")}

    def html(info: dict) -> str:
        return render("privacy.html.j2", env=info, run_id=info["run_id"], created=info["created"],
                      config=info["config"], config_json=json.dumps(info["config"], indent=2, default=str),
                      device=info["device"], timings=info["timings_seconds"], title=info["title"],
                      subtitle=info["subtitle"], **context)

    folder, _ = write_run_folder(
        out, f"privacy-{model}-{dataset}", kind="privacy-audit", title=f"Privacy audit: {model} on {dataset}",
        subtitle=f"feature inversion of {len(result.layers)} layer(s), {frame['n'].iloc[0]} victims",
        config={**result.info["config"], "seed": config.seed}, device=result.info["device"], checks=result.checks,
        timings=result.timings, render_html=html,
        tables={"results.csv": frame, "layers.csv": result.layers, "membership.csv": result.membership,
                "model_inversion.csv": result.model_inversion}, **extra)
    return folder

