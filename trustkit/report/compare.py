"""``trustkit report compare``: a leaderboard across finished runs (HTML + CSV + JSON)."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

from trustkit.tables import read_csv
from trustkit.errors import InvalidArgumentError
from trustkit.report import plots
from trustkit.report.html import render

KEYS = ["model", "dataset", "defense", "norm", "eps"]


def read_run(run_dir: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """results.csv and run.json of a run folder; one-line errors for what is missing or unreadable."""
    results_file, info_file = run_dir / "results.csv", run_dir / "run.json"
    if not run_dir.is_dir():
        raise InvalidArgumentError(f"run folder {run_dir} not found; pass folders written by 'trustkit bench'")
    if not results_file.is_file() or not info_file.is_file():
        raise InvalidArgumentError(f"{run_dir} has no results.csv and run.json; pass folders written by 'trustkit bench'")
    try:
        results = read_csv(results_file)  # model names such as 2024, None or NA stay strings
        info = json.loads(info_file.read_text(encoding="utf-8"))
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InvalidArgumentError(f"{run_dir} holds a corrupt results.csv or run.json ({exc}); re-run it") from None
    missing = {"robust_accuracy", "clean_accuracy", *KEYS} - set(results.columns)
    if missing:
        raise InvalidArgumentError(f"{results_file} lacks columns {', '.join(sorted(missing))}; re-run it with this trustkit")
    results["defense"] = results["defense"].replace("", "none").fillna("none")
    return results, info


def build_leaderboard(runs: list[tuple[pd.DataFrame, dict[str, Any]]]) -> pd.DataFrame:
    """One row per (run, model, data set, defense, norm, eps): clean accuracy, worst robust accuracy over the
    run's attacks and which attack achieved it, and the run's flagged sanity checks; sorted best first."""
    rows = []
    for results, info in runs:
        flags = [c["name"] for c in info.get("sanity_checks", []) if c.get("status") == "flag"]
        flags += [f"{model}: {c['name']}" for model, checks in info.get("model_probes", {}).items()
                  for c in checks if c.get("status") == "flag"]
        worst = results.loc[results.groupby(KEYS)["robust_accuracy"].idxmin()]
        counts = results.groupby(KEYS)["attack"].nunique()
        for row in worst.itertuples():
            rows.append({"run_id": info.get("run_id", ""), "model": row.model, "dataset": row.dataset,
                         "defense": row.defense, "norm": row.norm, "eps": row.eps, "n": row.n,
                         "clean_accuracy": row.clean_accuracy, "robust_accuracy": row.robust_accuracy,
                         "worst_attack": row.attack, "attacks": int(counts[tuple(getattr(row, k) for k in KEYS)]),
                         "flags": "; ".join(flags)})
    board = pd.DataFrame(rows)
    board["rank"] = board.groupby(["dataset", "norm", "eps"])["robust_accuracy"].rank(ascending=False, method="min")
    return board.sort_values(["dataset", "norm", "eps", "robust_accuracy"], ascending=[True, True, True, False]) \
        .reset_index(drop=True)


def compare_runs(run_dirs: list[str], out: str = "reports") -> Path:
    """Write ``<out>/<stamp>-compare/`` with report.html, leaderboard.csv and run.json; returns the folder."""
    from trustkit.rundir import write_run_folder

    started = time.perf_counter()
    if not run_dirs:
        raise InvalidArgumentError("name at least one run folder, e.g. trustkit report compare reports/*/")
    runs = [read_run(Path(d)) for d in run_dirs]
    board = build_leaderboard(runs)
    curves = pd.concat([r.assign(model=r["model"] + " · " + info.get("run_id", "")[-24:]) for r, info in runs])
    worst_curves = curves.loc[curves.groupby(KEYS)["robust_accuracy"].idxmin()].assign(attack="worst case",
                                                                                          engine="trustkit")
    tables = []
    for (dataset, norm, eps), group in board.groupby(["dataset", "norm", "eps"], sort=True):
        tables.append({"dataset": dataset, "norm": norm, "eps": eps, "rows": group.to_dict("records")})
    run_list = [{"run_id": i.get("run_id"), "folder": str(d), "kind": i.get("kind"), "device": i.get("device")}
                for d, (_, i) in zip(run_dirs, runs)]
    flagged = board[board["flags"] != ""]

    def html(info: dict) -> str:
        return render("compare.html.j2", run_id=info["run_id"], created=info["created"], env=info, runs=run_list,
                      tables=tables, plot=plots.accuracy_vs_eps(worst_curves), flagged=flagged)

    folder, _ = write_run_folder(out, "compare", kind="compare", title="Leaderboard",
                                 subtitle=f"{len(runs)} run(s) compared", config={"runs": list(run_dirs)},
                                 device="none (reads run folders)", checks=[],
                                 timings={"total": time.perf_counter() - started},
                                 tables={"leaderboard.csv": board}, render_html=html, runs=run_list)
    return folder

