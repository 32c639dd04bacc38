"""The fake-detection report: ROC curves, cross-generator heat maps, spectra, samples, degradations, evasion."""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from trustkit.attacks import format_eps
from trustkit.detection.features import azimuthal_spectrum
from trustkit.report.html import records, render
from trustkit.images import figure_uri, new_figure


def _roc_plot(rocs: dict, detectors: list[str], generators: list[str]) -> str:
    fig, axes = new_figure(3.4 * len(detectors), 3.4, ncols=len(detectors))
    axes = np.atleast_1d(axes)
    for ax, detector in zip(axes, detectors):
        for generator in generators:
            if (detector, generator) in rocs:
                fpr, tpr = rocs[(detector, generator)]
                ax.plot(fpr, tpr, label=generator)
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        ax.set_title(detector, fontsize=10)
        ax.set_xlabel("false-positive rate")
        ax.set_ylabel("true-positive rate")
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(alpha=0.3)
    return figure_uri(fig)


def _matrix_plot(results: pd.DataFrame, detectors: list[str], generators: list[str]) -> str:
    cross = results[results["kind"] == "cross-generator"]
    trained = [g for g in generators if g in set(cross["train_generator"])]  # --train-on: fewer rows
    fig, axes = new_figure(3.6 * len(detectors), 1.4 + 0.5 * len(trained), ncols=len(detectors))
    axes = np.atleast_1d(axes)
    for ax, detector in zip(axes, detectors):
        table = cross[cross["detector"] == detector].pivot(index="train_generator", columns="test_generator",
                                                          values="auc").reindex(index=trained, columns=generators)
        image = ax.imshow(table.values, cmap="RdYlGn", vmin=0.5, vmax=1.0)
        ax.set_xticks(range(len(generators)), generators, rotation=35, ha="right", fontsize=8)
        ax.set_yticks(range(len(trained)), trained, fontsize=8)
        for (row, col), value in np.ndenumerate(table.values):
            ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=8)
        ax.set_xlabel("tested on fakes of")
        ax.set_ylabel("trained on fakes of")
        ax.set_title(detector, fontsize=10)
    fig.colorbar(image, ax=axes[-1], label="AUC", fraction=0.046, pad=0.04)
    return figure_uri(fig)


def _spectra_plot(images: Any) -> str:
    fig, ax = new_figure(6.0, 3.6)
    profile = azimuthal_spectrum(images.real["test"]).mean(axis=0)
    ax.plot(profile, label="real", color="black", linewidth=2)
    for generator in images.generators:
        ax.plot(azimuthal_spectrum(images.fake[generator]["test"]).mean(axis=0), label=generator)
    ax.set_xlabel("spatial frequency (ring radius, cycles per image)")
    ax.set_ylabel("mean normalised log |FFT|")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return figure_uri(fig)


def _evasion_plot(results: pd.DataFrame, clean: pd.DataFrame) -> str:
    fig, ax = new_figure(6.0, 3.6)
    evasion = results[results["kind"].str.startswith("evasion") & (results["condition"] == "strongest")]
    for (detector, kind), group in evasion.groupby(["detector", "kind"], sort=False):
        means = group.groupby("eps")["auc"].mean()
        base = clean[clean["detector"] == detector]["auc"].mean()
        label = f"{detector} ({'white-box' if 'white-box' in kind else 'transfer'})"
        ax.plot([0.0, *means.index], [base, *means.values], marker="o", label=label)
    ticks = sorted({0.0, *evasion["eps"]})
    ax.set_xticks(ticks, [format_eps(t) if t else "0" for t in ticks])
    ax.set_xlabel("evasion budget eps (linf) on the fakes: strongest attack per image, 8-bit")
    ax.set_ylabel("AUC (mean over generators)")
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return figure_uri(fig)



def render_fakes(*, info: dict[str, Any], output: Any, tables: dict[str, pd.DataFrame], checks: list) -> str:
    """The self-contained HTML report of a fake-detection study (:mod:`trustkit.studies.fakes`)."""
    from trustkit.generative.images import grid_uri

    results = tables["results.csv"]
    images = output.groups["fakes"]["images"]
    rocs = {(r.cell.detector, r.cell.generator): tuple(np.asarray(p) for p in r.data["roc"])
            for r in output.finished if "roc" in r.data}
    detectors = list(dict.fromkeys(results["detector"]))
    generators = list(images.generators)
    cross = results[results["kind"] == "cross-generator"]
    clean = cross[cross["train_generator"] == cross["test_generator"]]
    in_distribution = clean.pivot(index="detector", columns="test_generator", values="auc").reindex(
        index=detectors, columns=generators)
    accuracy = clean.pivot(index="detector", columns="test_generator", values="accuracy").reindex(
        index=detectors, columns=generators)
    unseen = cross[cross["train_generator"] != cross["test_generator"]].groupby("detector")["auc"].mean()
    degradation = results[results["kind"] == "degradation"].groupby(["detector", "condition"])["auc"].mean() \
        .unstack("condition").reindex(index=detectors)
    evasion = results[results["kind"].str.startswith("evasion")]
    evasion_table = evasion.groupby(["detector", "kind", "condition", "eps"], sort=False)["auc"].mean().unstack("eps")
    per_generator = []
    for (detector, trained_on), group in cross.groupby(["detector", "train_generator"], sort=False):
        by_test = group.set_index("test_generator")
        unseen = by_test.drop(index=trained_on, errors="ignore")["ap"]
        per_generator.append({"detector": detector, "trained_on": trained_on, "unseen_ap": unseen.mean(),
                              "cells": [{"ap": by_test["ap"].get(g, float("nan")), "auc": by_test["auc"].get(g, float("nan")),
                                         "seen": g == trained_on} for g in generators]})
    realism = records(tables["realism.csv"]) if len(tables.get("realism.csv", [])) else []
    samples = [{"name": "real", "uri": grid_uri(images.real["test"][:16].float() / 255.0, columns=8)}]
    samples += [{"name": g, "uri": grid_uri(images.fake[g]["test"][:16].float() / 255.0, columns=8)} for g in generators]
    return render(
        "detect.html.j2", run_id=info["run_id"], created=info["created"], env=info,
        config=info["config"], config_json=json.dumps(info["config"], indent=2, default=str),
        device=info["device"], timings=info["timings_seconds"], data=info["data"],
        detectors=detectors, generators=generators, per_generator=per_generator, realism=realism,
        in_distribution=[{"detector": d, "auc": [in_distribution.loc[d, g] for g in generators],
                          "accuracy": [accuracy.loc[d, g] for g in generators],
                          "unseen": unseen.get(d, float("nan"))} for d in detectors],
        degradation_conditions=list(degradation.columns),
        degradation=[{"detector": d, "auc": list(degradation.loc[d])} for d in detectors] if len(degradation) else [],
        evasion_eps=list(evasion_table.columns),
        evasion=[{"detector": d, "kind": k, "condition": c, "auc": list(row)}
                 for (d, k, c), row in evasion_table.iterrows()],
        roc=_roc_plot(rocs, detectors, generators), matrix=_matrix_plot(results, detectors, generators),
        spectra=_spectra_plot(images), evasion_plot=_evasion_plot(results, clean) if len(evasion) else None,
        samples=samples, detector_info=info["detectors"], rows=records(cross), failures=info.get("failures", []),
    )
