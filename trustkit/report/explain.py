"""The report of an explain study: evidence galleries per class, clean vs adversarial, deletion/insertion
curves, the randomisation test (curve and map strips), results and checks (``trustkit.studies.explain``)."""
from __future__ import annotations

import json
from typing import Any

import pandas as pd
import torch

from trustkit.explain.randomization import FLAG_RANK_CORRELATION
from trustkit.images import figure_uri, image_uri, new_figure, unpack_images
from trustkit.report.html import records, render


def overlay(image: torch.Tensor, evidence: torch.Tensor, alpha: float = 0.55) -> torch.Tensor:
    """``image`` (C×H×W in [0, 1]) in grey under ``evidence`` (1×H×W in [0, 1]) in matplotlib's inferno
    colours: 3×H×W in [0, 1]."""
    from matplotlib import colormaps

    grey = image.mean(0, keepdim=True).expand(3, -1, -1)
    colours = torch.from_numpy(colormaps["inferno"](evidence[0].numpy())[..., :3]).permute(2, 0, 1).float()
    return ((1 - alpha) * grey + alpha * colours).clamp(0, 1)


def faithfulness_plot(curves: pd.DataFrame) -> str:
    """Deletion and insertion curves of every method, the random order dashed (data URI)."""
    fig, axes = new_figure(10.0, 3.6, ncols=2)
    for ax, mode in zip(axes, ("deletion", "insertion"), strict=True):
        part = curves[curves["mode"] == mode]
        for method, rows in part.groupby("method", sort=False):
            dashed = method == "random order"
            ax.plot(rows["fraction"], rows["mean_probability"], linestyle="--" if dashed else "-",
                    color="#6b7280" if dashed else None, label=method)
        ax.set_xlabel("fraction of pixels " + ("removed (most important first)" if mode == "deletion"
                                                else "restored (most important first)"))
        ax.set_ylabel("mean probability of the class")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{mode}: {'lower' if mode == 'deletion' else 'higher'} area is better", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return figure_uri(fig)


def randomization_plot(randomization: pd.DataFrame) -> str:
    """Rank correlation with the trained model's maps as layers are randomised top down (data URI)."""
    fig, ax = new_figure(7.0, 3.8)
    labels: list[str] = []
    for method, rows in randomization.groupby("method", sort=False):
        ax.errorbar(rows["step"], rows["rank_correlation"], yerr=rows["rank_correlation_std"], marker="o",
                    capsize=3, label=method)
        if len(rows) > len(labels):
            labels = list(rows["layers"])
    ax.axhline(FLAG_RANK_CORRELATION, color="#b35900", linestyle="--", linewidth=1, label="flag threshold")
    ax.set_xticks(range(len(labels)), [f"{i}: {t}" for i, t in enumerate(labels)], rotation=30, ha="right",
                  fontsize=8)
    ax.set_xlabel("layers randomised so far (from the logits down)")
    ax.set_ylabel("Spearman ρ with trained maps")
    ax.set_ylim(-0.3, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure_uri(fig)


def render_explain(*, info: dict[str, Any], output: Any, tables: dict[str, pd.DataFrame], checks: list) -> str:
    """The self-contained HTML report of an explain run."""
    results, curves, randomization = tables["results.csv"], tables["curves.csv"], tables["randomization.csv"]
    group = next(iter(output.groups.values()), None)
    methods: list[dict[str, Any]] = []
    galleries: list[dict[str, Any]] = []
    moved: list[dict[str, Any]] = []
    if group is not None:
        names = group["class_names"]
        images, adversarial_images = unpack_images(group["images"]), unpack_images(group["adversarial_images"])
        labels, clean, adversarial = group["labels"], group["clean"], group["adversarial"]
        first_of_class = {}
        for i, label in enumerate(labels):
            first_of_class.setdefault(label, i)
        fooled = [i for i in range(len(labels)) if clean[i] == labels[i] and adversarial[i] != labels[i]][:6]
        finished = {r.cell.method: r.data for r in output.finished}
        for method, data in finished.items():
            clean_maps = unpack_images(data["clean_maps"])
            adv_maps = unpack_images(data["adversarial_maps"])
            galleries.append({"method": method, "items": [
                {"label": names[label], "image": image_uri(images[i]), "map": image_uri(overlay(images[i], clean_maps[i])),
                 "predicted": names[clean[i]], "correct": clean[i] == label}
                for label, i in sorted(first_of_class.items())]})
            moved.append({"method": method, "items": [
                {"label": names[labels[i]], "adversarial_label": names[adversarial[i]],
                 "image": image_uri(images[i]), "map": image_uri(overlay(images[i], clean_maps[i])),
                 "adversarial": image_uri(adversarial_images[i]),
                 "adversarial_map": image_uri(overlay(adversarial_images[i], adv_maps[i]))} for i in fooled]})
            strip = [{"layers": s["layers"], "rho": s["rank_correlation"],
                      "maps": [image_uri(overlay(images[j], m)) for j, m in enumerate(unpack_images(s["maps"])[:3])]}
                     for s in data["randomization"]]
            methods.append({"method": method, "strip": strip})
    flagged = [c for c in checks if c.status == "flag"]
    return render(
        "explain.html.j2", env=info, run_id=info["run_id"], created=info["created"], config=info["config"],
        config_json=json.dumps(info["config"], indent=2, default=str), device=info["device"],
        timings=info["timings_seconds"], title=info["title"], subtitle=info["subtitle"], group=group or {},
        rows=records(results), checks=[c.to_dict() for c in checks], flag_count=len(flagged),
        galleries=galleries, moved=moved, methods=methods,
        faithfulness=faithfulness_plot(curves) if len(curves) else None,
        randomization=randomization_plot(randomization) if len(randomization) else None,
        threshold=FLAG_RANK_CORRELATION, failures=info.get("failures", []))
