"""The robustness report of one ``bench`` run: context building for ``bench.html.j2``."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch

from trustkit.atomic import write_text
from trustkit.report import plots
from trustkit.report.html import render
from trustkit.report.images import image_uri, perturbation_uri


def _gallery(outcome: Any, x: torch.Tensor, y: torch.Tensor, clean: Any, gallery_index: torch.Tensor,
             class_names: Sequence[str]) -> dict[str, Any]:
    items = []
    for slot, i in enumerate(gallery_index.tolist()):
        x_adv = outcome.gallery_x_adv[slot]
        adv_label = int(outcome.adversarial.label[i])
        items.append({
            "clean": image_uri(x[i]), "adv": image_uri(x_adv), "delta": perturbation_uri(x_adv - x[i]),
            "true": class_names[int(y[i])], "clean_pred": class_names[int(clean.label[i])],
            "clean_conf": float(clean.confidence[i]), "adv_pred": class_names[adv_label],
            "adv_conf": float(outcome.adversarial.confidence[i]), "fooled": adv_label != int(y[i]),
            "linf": float(outcome.linf[i]), "l2": float(outcome.l2[i]),
        })
    return {"attack": outcome.attack.name, "norm": outcome.attack.norm, "eps": outcome.attack.eps, "samples": items,
            "fooled": sum(it["fooled"] for it in items)}


def _most_telling(galleries: list[dict[str, Any]]) -> int:
    """Index of the gallery to show unfolded: the first where at least half the shown images are fooled."""
    for index, gallery in enumerate(galleries):
        if gallery["samples"] and gallery["fooled"] * 2 >= len(gallery["samples"]):
            return index
    return len(galleries) - 1


def write_bench_report(path: Path, *, results: pd.DataFrame, per_class: pd.DataFrame, checks: list, run_info: dict,
                       x: torch.Tensor, y: torch.Tensor, clean: Any, outcomes: list, gallery_index: torch.Tensor,
                       class_names: Sequence[str]) -> None:
    """Write the self-contained HTML report of a bench run to ``path``."""
    galleries = [_gallery(o, x, y, clean, gallery_index, class_names) for o in outcomes]
    worst = results.loc[results["robust_accuracy"].idxmin()]
    heatmaps = []
    for (attack, norm), group in per_class.groupby(["attack", "norm"], sort=False):
        title = f"{attack} ({norm})"
        heatmaps.append({"title": title, "uri": plots.per_class_heatmap(group, class_names, title)})
    records = results.to_dict("records")
    for record in records:  # pandas gives NaN for empty cells; the template prints them as "–"
        for key, value in record.items():
            if isinstance(value, float) and math.isnan(value):
                record[key] = None
    html = render(
        "bench.html.j2",
        run_id=run_info["run_id"], created=run_info["created"], env=run_info, config=run_info["config"],
        config_json=json.dumps(run_info["config"], indent=2, default=str),
        model={"name": run_info["model"]["name"], "source": run_info["model"]["source"],
               "summary": run_info["model"].get("summary", {})},
        dataset={"name": run_info["config"]["dataset"]},
        attacks=list(dict.fromkeys(results["attack"])), n=int(results["n"].iloc[0]),
        threat_models=sorted(set(results["norm"])), clean_accuracy=float(results["clean_accuracy"].iloc[0]),
        worst=worst.to_dict(), rows=records, checks=[c.to_dict() for c in checks],
        flag_count=sum(c.status == "flag" for c in checks), device=run_info["device"],
        timings=run_info["timings_seconds"], plots={"curve": plots.accuracy_vs_eps(results)},
        galleries=galleries, open_gallery=_most_telling(galleries), heatmaps=heatmaps,
    )
    write_text(path, html)
