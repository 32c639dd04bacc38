"""The report of a substitute study: agreement per training round, success against eps, rows and checks."""
from __future__ import annotations

import json
from typing import Any

import pandas as pd

from trustkit.report.blackbox_plots import agreement_vs_queries, success_vs_eps
from trustkit.report.html import records, render


def render_substitute(*, info: dict[str, Any], output: Any, tables: dict[str, pd.DataFrame], checks: list) -> str:
    """The self-contained HTML report of a substitute run (``trustkit.studies.substitute``)."""
    results, history = tables["results.csv"], tables["history.csv"]
    group = next(iter(output.groups.values()), {"target": {}, "queries": 0, "seed_images": 0, "history": []})
    curves = pd.concat([results.assign(line=results["attack"] + " from the substitute"),
                        results.assign(line=results["attack"] + " white-box on the target",
                                       success_rate=results["white_box_success_rate"])])
    return render(
        "substitute.html.j2", env=info, run_id=info["run_id"], created=info["created"], config=info["config"],
        config_json=json.dumps(info["config"], indent=2, default=str), device=info["device"],
        timings=info["timings_seconds"], title=info["title"], subtitle=info["subtitle"],
        rows=records(results), history=records(history), checks=[c.to_dict() for c in checks],
        flag_count=sum(c.status == "flag" for c in checks), queries=group["queries"],
        seed_images=group["seed_images"], agreement=results["agreement"].iloc[0] if len(results) else None,
        best=records(results.nlargest(1, "success_rate")), target=group["target"],
        substitute=info["config"].get("substitute"), settings=info["config"],
        agreement_plot=agreement_vs_queries(group["history"]),
        success_plot=success_vs_eps(curves, ("line",)) if len(results) else None, failures=info.get("failures", []))
