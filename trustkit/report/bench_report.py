"""The robustness report of a bench run or suite: one section per (model, data set, defense)."""
from __future__ import annotations

import json
from typing import Any

import pandas as pd

from trustkit.attacks.base import format_eps
from trustkit.report import plots
from trustkit.report.export import robustbench_entries
from trustkit.report.html import records, render
from trustkit.sanity import evaluation_strength


def _most_telling(galleries: list[dict[str, Any]]) -> int:
    """Index of the gallery to show unfolded: the first where at least half the shown images are fooled."""
    for index, gallery in enumerate(galleries):
        if gallery["samples"] and gallery["fooled"] * 2 >= len(gallery["samples"]):
            return index
    return len(galleries) - 1


def _breakdowns(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"attack": r["attack"], "eps": r["eps"], "robust": round(r["robust_accuracy"] * r["n"]),
             "counts": dict(item.split(":") for item in r["broken_by"].split(";"))}
            for r in rows if isinstance(r.get("broken_by"), str) and r["broken_by"]]


def _query_section(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Success-vs-queries figure and table of the query-based (black-box) rows; None when there are none."""
    from trustkit.report.blackbox_plots import success_vs_queries

    rows = [r for r in rows if isinstance(r.get("query_curve"), dict)]
    if not rows:
        return None
    entries = []
    for r in rows:
        curve = r["query_curve"]
        label = f"{r['attack']} ({r['norm']}) eps {format_eps(r['eps'])}"
        entries.append({"label": label, "query_curve": curve, "attack": r["attack"], "norm": r["norm"],
                        "eps": r["eps"], "success_rate": r["success_rate"], "median": r.get("queries"),
                        "mean": curve["total_queries"] / curve["attacked"] if curve["attacked"] else None,
                        "budget": curve.get("budget")})
    return {"plot": success_vs_queries(entries), "rows": entries}


def _model_summary(info: dict[str, Any]) -> dict[str, Any]:
    meta = info.get("metadata", {})
    summary: dict[str, Any] = {k: meta[k] for k in ("arch", "dataset", "seed") if k in meta}
    if "recipe" in meta:
        summary["training recipe"] = ", ".join(f"{k}={v}" for k, v in meta["recipe"].items())
    metrics = meta.get("metrics", {})
    if metrics.get("clean_accuracy") is not None:
        summary["test accuracy at training"] = f"{metrics['clean_accuracy']:.2%}"
    if metrics.get("best_epoch"):  # adversarial training: what the guard kept, and whether it ever took
        kept = f"epoch {metrics['best_epoch']}"
        if metrics.get("best_val_pgd_accuracy") is not None:
            kept += f", validation PGD-10 accuracy {metrics['best_val_pgd_accuracy']:.1%}"
        if metrics.get("best_val_square_accuracy") is not None:  # the guard's score-based check (no gradients)
            kept += f", Square {metrics['best_val_square_accuracy']:.1%}"
            if metrics.get("best_val_robust_accuracy") is not None:
                kept += f", both (per image) {metrics['best_val_robust_accuracy']:.1%}"
            if metrics.get("masking_suspected"):  # set at training time: gap above trustkit.train.fit.MASKING_GAP
                gap = (metrics.get("best_val_pgd_accuracy") or 0.0) - metrics["best_val_square_accuracy"]
                kept += (f"; WARNING: Square (no gradients) beat PGD-10 by {gap * 100:.1f} points on the kept "
                         "epoch — gradient masking: gradient attacks overstate this model's robustness")
            elif metrics.get("masking_epochs"):
                kept += f"; Square beat PGD-10 at epoch(s) {', '.join(map(str, metrics['masking_epochs']))} (not kept)"
        if metrics.get("catastrophic_overfitting_at"):
            kept += f"; catastrophic overfitting at epoch {metrics['catastrophic_overfitting_at']}"
        if metrics.get("never_robust"):
            kept += "; WARNING: adversarial training never became robust"
        summary["adversarial training kept"] = kept
    if meta.get("format") not in (None, "trustkit-checkpoint"):
        summary["format"] = meta["format"]
    summary["parameters"] = f"{info['parameters']:,}"
    return summary


def _label(record) -> str:  # noqa: ANN001 - studies.base.CellRecord of a bench cell
    evaluation = record.data["row"].get("evaluation", "standard")
    return record.cell.attack.label + ("" if evaluation == "standard" else f" · {evaluation}")


def _section(results: list, info: dict[str, Any]) -> dict[str, Any]:
    from trustkit.report.gallery import render_gallery

    class_names = info["class_names"]
    probes = info.get("probes", [])
    frame = pd.DataFrame([r.data["row"] for r in results])
    rows = records(frame.to_dict("records"))
    per_class = pd.DataFrame([{**p, "attack": _label(r), "norm": r.cell.norm, "eps": r.cell.eps}
                              for r in results for p in r.data["per_class"]])
    heatmaps = []
    for (attack, norm), group in per_class.groupby(["attack", "norm"], sort=False):
        title = f"{attack} ({norm})"
        heatmaps.append({"title": title, "uri": plots.per_class_heatmap(group, class_names, title)})
    galleries = []
    for r in results:
        samples = render_gallery(r.data.get("gallery", {}), class_names)
        galleries.append({"attack": _label(r), "norm": r.cell.norm, "eps": r.cell.eps, "samples": samples,
                          "fooled": sum(g["fooled"] for g in samples)})
    breakdowns = _breakdowns(rows)
    curves: dict[str, dict] = {}
    grid: dict[str, list[tuple[float, float]]] = {}
    for r in results:
        if "min_norms" in r.data:
            label = f"{_label(r)} ({r.cell.norm})"
            curves.setdefault(label, {"norms": r.data["min_norms"], "norm": r.cell.norm})
            grid.setdefault(label, []).append((r.cell.eps, r.data["row"]["robust_accuracy"]))
    worst = frame.loc[frame["robust_accuracy"].idxmin()].to_dict()
    first = results[0].cell
    return {
        "id": f"{info['name']}-{first.dataset}-{first.defense}".replace(" ", "-"),
        "title": f"{info['name']} on {first.dataset}" + ("" if first.defense == "none" else f" + defense {first.defense}"),
        "defended": first.defense != "none",
        "model": {"name": info["name"], "source": info["source"], "summary": _model_summary(info)},
        "clean_accuracy": info["clean_accuracy"], "n": info["n"], "worst": worst, "rows": rows,
        "curve": plots.accuracy_vs_eps(frame), "galleries": galleries, "open_gallery": _most_telling(galleries),
        "heatmaps": heatmaps, "breakdowns": breakdowns,
        "min_norm_plot": plots.minimal_perturbation_curve(curves, grid) if curves else None,
        "breakdown_members": list(dict.fromkeys(m for b in breakdowns for m in b["counts"])),
        "probes": list(probes),
        "threat_models": sorted(set(frame["norm"])),
        "queries": _query_section(rows),
        "strength": evaluation_strength(frame),
        "card": {"dataset": first.dataset, "entries": robustbench_entries(frame)},
        "rand_note": any(r.get("attack") == "strong-rand" for r in rows),
        "reused": int(sum(r.data["row"].get("reused", 0) for r in results)),
    }


def leaderboard(results: pd.DataFrame) -> pd.DataFrame:
    """Per (model, data set, defense, norm, eps): clean accuracy and the worst robust accuracy over attacks."""
    keys = ["model", "dataset", "defense", "norm", "eps"]  # the worst case over attacks and evaluations
    worst = results.loc[results.groupby(keys)["robust_accuracy"].idxmin()]
    board = worst[keys + ["clean_accuracy", "robust_accuracy", "attack", "n"]].rename(columns={"attack": "worst_attack"})
    return board.sort_values(["norm", "eps", "robust_accuracy"], ascending=[True, True, False]).reset_index(drop=True)


def render_bench(*, info: dict[str, Any], output: Any, tables: dict[str, pd.DataFrame], checks: list,
                 embedded: bool = False) -> str:
    """The self-contained HTML report of a bench run or suite (one section per model group; failed cells
    listed with their errors); ``embedded``: only its content, as a section of a combined report."""
    results = tables["results.csv"]
    grouped: dict[Any, list] = {}
    for record in output.finished:
        grouped.setdefault(record.cell.group, []).append(record)
    sections = [_section(records, output.groups[group]) for group, records in grouped.items()]
    all_checks = [c.to_dict() for c in checks] + [
        {**c, "name": f"{s['title']}: {c['name']}"} for s in sections for c in s["probes"]]
    board = leaderboard(results) if len(results) else results
    return render(
        "bench.html.j2", run_id=info["run_id"], created=info["created"], env=info,
        config=info["config"], config_json=json.dumps(info["config"], indent=2, default=str),
        title=info["title"], subtitle=info["subtitle"], sections=sections,
        leaderboard=records(board.to_dict("records")) if len(sections) > 1 else [],
        leaderboard_plot=plots.accuracy_vs_eps(board.assign(attack="worst case", engine="trustkit"), bands=False)
        if len(sections) > 1 else None,
        checks=all_checks, flag_count=sum(c["status"] == "flag" for c in all_checks), device=info["device"],
        timings=info["timings_seconds"], n_cells=len(output.records),
        cached_cells=sum(r.cached for r in output.records), failures=info.get("failures", []), embedded=embedded,
    )


def bench_section(*, info: dict[str, Any], output: Any, tables: dict[str, pd.DataFrame], checks: list) -> str:
    """The attacks of a combined report (report/combined.py): the bench report's content alone."""
    return render_bench(info=info, output=output, tables=tables, checks=checks, embedded=True)
