"""The report of a transfer study: one success heat map per (attack, eps), the rows, models and checks."""
from __future__ import annotations

import json
from typing import Any

import pandas as pd

from trustkit.attacks import format_eps
from trustkit.blackbox.transfer import TRANSFER_COLUMNS, success_matrix
from trustkit.report.blackbox_plots import transfer_heatmap
from trustkit.report.html import records, render


def render_transfer(*, info: dict[str, Any], output: Any, tables: dict[str, pd.DataFrame], checks: list) -> str:
    """The self-contained HTML report of a transfer run (``trustkit.studies.transfer``)."""
    results = tables["results.csv"]
    group = next(iter(output.groups.values()), {"models": [], "n": 0, "source_names": [], "target_names": []})
    heatmaps = []
    for (attack, norm, eps), _ in results.groupby(["attack", "norm", "eps"], sort=False):
        title = f"{attack} ({norm}) eps {format_eps(eps)}"
        heatmaps.append({"title": title, "uri": transfer_heatmap(success_matrix(results, attack, eps, norm), title)})
    transfers = results[~results["white_box"]] if len(results) else results
    return render(
        "transfer.html.j2", env=info, run_id=info["run_id"], created=info["created"], config=info["config"],
        config_json=json.dumps(info["config"], indent=2, default=str), device=info["device"],
        timings=info["timings_seconds"], title=info["title"], subtitle=info["subtitle"], heatmaps=heatmaps,
        rows=records(results[TRANSFER_COLUMNS]), models=group["models"], checks=[c.to_dict() for c in checks],
        flag_count=sum(c.status == "flag" for c in checks), n=group["n"], sources=group["source_names"],
        targets=group["target_names"],
        best=records(transfers.nlargest(1, "success_rate")[TRANSFER_COLUMNS]) if len(transfers) else [],
        failures=info.get("failures", []))
