"""The privacy audit's report: report.html (self-contained) beside results.csv (one row per layer × attack ×
mitigation, plus the mean-image baseline and the originals), layers.csv (risk rating per layer),
membership.csv, model_inversion.csv and run.json, which the engine writes into ``reports/<run-id>/``."""
from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from trustkit.report.html import records, render
from trustkit.images import figure_uri, image_uri, new_figure, unpack_images

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


def _galleries(layers: pd.DataFrame, results: pd.DataFrame, attacks: list[str], victims: torch.Tensor,
               reconstructions: dict[tuple[str, str], torch.Tensor]) -> list[dict[str, Any]]:
    galleries = []
    original = strip_uri(victims)
    plain = results[(results["kind"] == "attack") & (results["mitigation"] == "none")]
    for _, layer in layers.sort_values("layer_order").iterrows():
        strips = [{"label": "original", "uri": original, "psnr": None, "ssim": None}]
        for attack in attacks:
            images = reconstructions.get((layer["layer"], attack))
            if images is None:
                continue
            row = plain[(plain["layer"] == layer["layer"]) & (plain["attack"] == attack)].iloc[0]
            strips.append({"label": attack, "uri": strip_uri(images), "psnr": row["psnr"], "ssim": row["ssim"]})
        galleries.append({"layer": layer["layer"], "risk": layer["risk"], "shape": layer["feature_shape"],
                          "strips": strips})
    return galleries


def _membership_section(data: dict[str, Any] | None, rows: pd.DataFrame, note: str) -> dict[str, Any]:
    if data is None or not data["rows"]:
        return {"available": False, "note": note, "rows": [], "roc": None}
    from trustkit.privacy.membership import MembershipResult, roc_figure

    try:
        roc = roc_figure(MembershipResult(data["rows"], {a: (np.asarray(f), np.asarray(t))
                                                         for a, (f, t) in data["roc"].items()}))
    except Exception as exc:  # noqa: BLE001 - the other half of the audit must still render
        roc, note = None, f"ROC figure failed ({type(exc).__name__}: {exc})"
    return {"available": True, "note": note, "rows": records(rows), "roc": roc}


def _model_inversion_section(data: dict[str, Any] | None, rows: pd.DataFrame, note: str) -> dict[str, Any]:
    if data is None or not data["rows"]:
        return {"available": False, "note": note, "rows": [], "gallery": None}
    from trustkit.privacy.model_inversion import ModelInversionResult, gallery_figure

    try:
        result = ModelInversionResult(unpack_images(data["images"]), data["classes"], data["rows"])
        gallery = gallery_figure(result, real_means=unpack_images(data["real_means"]))
    except Exception as exc:  # noqa: BLE001
        gallery, note = None, f"gallery failed ({type(exc).__name__}: {exc})"
    return {"available": True, "note": note, "rows": records(rows), "gallery": gallery}


def privacy_section(*, info: dict[str, Any], output: Any, tables: dict[str, pd.DataFrame], checks: list) -> str:
    """The audit report's content as an HTML fragment (one section of a combined report)."""
    return render_privacy(info=info, output=output, tables=tables, checks=checks, embedded=True)


def render_privacy(*, info: dict[str, Any], output: Any, tables: dict[str, pd.DataFrame], checks: list,
                   embedded: bool = False) -> str:
    """The self-contained HTML report of a privacy audit (:mod:`trustkit.studies.privacy_audit`); ``embedded``:
    only its content, as a section of a combined report."""
    from trustkit.studies.privacy_audit import InversionCell, MembershipCell, ModelInversionCell

    frame, layers = tables["results.csv"], tables["layers.csv"]
    group = output.groups.get("audit", {})
    reid = info["reid"]
    finished = output.finished
    reconstructions = {(r.cell.layer, r.cell.attack): unpack_images(r.data["images"]) for r in finished
                       if isinstance(r.cell, InversionCell) and r.cell.mitigation is None}
    mitigation_strip = [{"label": r.cell.mitigation_name, "uri": strip_uri(unpack_images(r.data["images"]))}
                        for r in finished if isinstance(r.cell, InversionCell) and r.cell.mitigation is not None
                        and r.cell.attack == "white-box"]
    member = next((r.data for r in finished if isinstance(r.cell, MembershipCell)), None)
    inverted = next((r.data for r in finished if isinstance(r.cell, ModelInversionCell)), None)
    baseline = frame[frame["kind"] == "baseline"].iloc[0]
    mitigated = frame[(frame["kind"] == "attack") & (frame["mitigation"] != "none")]
    context = {
        "layers": records(layers), "rows": records(frame[frame["kind"] == "attack"]),
        "baseline": records(frame[frame["kind"] == "baseline"])[0],
        "original": records(frame[frame["kind"] == "original"])[0],
        "galleries": _galleries(layers, frame, info["config"]["attacks"], unpack_images(group["victims"]),
                                reconstructions) if len(layers) else [],
        "leakage_plot": leakage_figure(frame, reid["chance"], reid["what"]) if len(layers) else None,
        "mitigation_plot": mitigation_figure(frame, reid["what"]),
        "mitigation_rows": records(mitigated),
        "mitigation_layer": mitigated["layer"].iloc[0] if len(mitigated) else None,
        "mitigation_strip": mitigation_strip,
        "membership": _membership_section(member, tables["membership.csv"], info["membership_note"]),
        "model_inversion": _model_inversion_section(inverted, tables["model_inversion.csv"],
                                                    info["model_inversion_note"]),
        "reid": reid, "checks": [c.to_dict() for c in checks], "flag_count": sum(c.status == "flag" for c in checks),
        "clean_accuracy": info["clean_accuracy"], "attack_params": info["attack_params"],
        "n": int(frame["n"].iloc[0]), "model": frame["model"].iloc[0], "dataset": frame["dataset"].iloc[0],
        "baseline_ssim": float(baseline["ssim"]),
        "highest_risk": max(layers["risk"], key=lambda r: {"low": 0, "medium": 1, "high": 2}[r]) if len(layers)
        else "unknown",
    }
    return render("privacy.html.j2", env=info, run_id=info["run_id"], created=info["created"],
                  config=info["config"], config_json=json.dumps(info["config"], indent=2, default=str),
                  device=info["device"], timings=info["timings_seconds"], title=info["title"],
                  subtitle=info.get("subtitle", ""), failures=info.get("failures", []), embedded=embedded, **context)
