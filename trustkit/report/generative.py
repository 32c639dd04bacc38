"""The HTML report of a ``gen train`` / ``gen eval`` run: loss curves, sample grids per epoch, final samples,
interpolation strips, metrics table and run metadata, rendered with ``gen.html.j2`` (self-contained)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch

from trustkit.data import get_spec
from trustkit.generative import GenerativeModel
from trustkit.generative.evaluate import GenEvaluation
from trustkit.generative.latent import interpolation_method, random_interpolations
from trustkit.generative.run import (INTERPOLATION_PAIRS, INTERPOLATION_STEPS, GenRunResult, _reconstructions,
                                     parameter_counts, report_samples)
from trustkit.generative.train import GenHistory

from trustkit.generative.images import grid_uri, strips
from trustkit.report.html import render
from trustkit.images import image_uri
from trustkit.report.plots import figure_uri as _to_uri, new_figure as _figure

# Curves drawn on the losses panel, in this order when present; everything else numeric goes to the second.
LOSS_KEYS = ("d_loss", "g_loss", "loss", "reconstruction", "kl", "d_aux", "g_aux", "gradient_penalty")
DIAGNOSTIC_KEYS = ("d_real", "d_fake", "aux_accuracy", "wasserstein", "test_elbo", "test_loss")
LABELS = {"d_loss": "D loss", "g_loss": "G loss", "loss": "loss", "reconstruction": "−log p(x|z) (nats)",
          "kl": "KL (nats)", "d_aux": "D class loss", "g_aux": "G class loss", "gradient_penalty": "gradient penalty",
          "d_real": "D(x) real", "d_fake": "D(G(z))", "aux_accuracy": "D class accuracy on real",
          "wasserstein": "critic Wasserstein estimate", "test_elbo": "test ELBO (nats)", "test_loss": "test MSE"}


def loss_curves(epochs: list[dict[str, float]]) -> dict[str, str]:
    """Plots (data URIs) of the per-epoch losses and of the diagnostics (D outputs, test ELBO ...)."""
    plots: dict[str, str] = {}
    for title, keys, name in (("training losses (mean per epoch)", LOSS_KEYS, "losses"),
                              ("diagnostics", DIAGNOSTIC_KEYS, "diagnostics")):
        present = [k for k in keys if any(k in e for e in epochs)]
        if not present or not epochs:
            continue
        fig, ax = _figure(6.4, 3.6)
        from matplotlib.ticker import MaxNLocator  # after _figure, which selects the Agg backend
        for key in present:
            points = [(e["epoch"], e[key]) for e in epochs if key in e]
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o" if len(points) < 30 else None,
                    label=LABELS.get(key, key))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        plots[name] = _to_uri(fig)
    return plots


def class_histogram(counts: Sequence[int], class_names: Sequence[str], title: str) -> str:
    """Bar chart (data URI) of how many samples the classifier puts in each class; dashed line = uniform."""
    fig, ax = _figure(max(4.0, 0.5 * len(counts) + 2), 3.2)
    ax.bar(range(len(counts)), counts, color="#4b6fa5")
    ax.axhline(sum(counts) / max(1, len(counts)), color="#b35900", linestyle="--", linewidth=1, label="uniform")
    ax.set_xticks(range(len(counts)), list(class_names), rotation=0 if len(counts) <= 10 else 90)
    ax.set_ylabel("samples")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _to_uri(fig)


def epoch_grids(grids: list[torch.Tensor], columns: int) -> list[dict[str, Any]]:
    """One embedded grid per epoch (epoch number and data URI)."""
    return [{"epoch": i + 1, "uri": grid_uri(g, columns)} for i, g in enumerate(grids)]


def render_gen_report(*, run_info: dict[str, Any], rows: list[dict[str, Any]],
                     history: list[dict[str, float]], grids: list[torch.Tensor], grid_columns: int,
                     samples: torch.Tensor, sample_columns: int, interpolations: torch.Tensor | None,
                     reconstructions: torch.Tensor | None, coverage: Any, per_class: list[dict[str, Any]],
                     class_names: Sequence[str]) -> str:
    """Write the self-contained HTML report of a generative run to ``path``."""
    histogram = None
    if coverage is not None:
        histogram = class_histogram(coverage.counts, class_names,
                                    f"class of {sum(coverage.counts)} samples according to {run_info['feature_net']}")
    html = render(
        "gen.html.j2",
        run_id=run_info["run_id"], created=run_info["created"], env=run_info, kind=run_info["kind"],
        model=run_info["model"], dataset=run_info["config"]["dataset"], config=run_info["config"],
        config_json=json.dumps(run_info["config"], indent=2, default=str), device=run_info["device"],
        timings=run_info["timings_seconds"], rows=rows, metrics={r["metric"]: r["value"] for r in rows},
        history=history, plots=loss_curves(history), grids=epoch_grids(grids, grid_columns),
        samples=grid_uri(samples, sample_columns) if samples is not None else None,
        conditional=run_info["model"].get("conditional", False),
        interpolations=image_uri(strips(interpolations)) if interpolations is not None else None,
        reconstructions=image_uri(strips(reconstructions)) if reconstructions is not None else None,
        histogram=histogram, per_class=per_class, feature_net=run_info.get("feature_net", ""),
    )
    return html


def write_run(out: str | os.PathLike, *, kind: str, model: GenerativeModel, metadata: dict[str, Any],
              checkpoint: Path, evaluation: GenEvaluation | None, history: GenHistory | None,
              config: dict[str, Any], timings: dict[str, float], device: torch.device,
              data_root: str | os.PathLike | None, seed: int) -> GenRunResult:
    """Write the report folder of a run (see module doc) and return what it holds."""
    arch, dataset = metadata["arch"], metadata["dataset"]
    spec = get_spec(dataset)
    samples, columns = report_samples(model, seed + 3)
    method = interpolation_method(model)
    interpolations = random_interpolations(model, INTERPOLATION_PAIRS, INTERPOLATION_STEPS, seed=seed + 4)
    rows = evaluation.rows if evaluation else []
    metrics = pd.DataFrame([{"model": arch, "dataset": dataset, **r} for r in rows],
                           columns=["model", "dataset", "metric", "value", "unit", "n", "detail"])
    epochs = history.epochs if history else metadata.get("history", [])
    history_columns = list(dict.fromkeys(k for e in epochs for k in e))
    from trustkit.rundir import write_run_folder

    reconstructions = _reconstructions(model, dataset, data_root)

    def html(info: dict[str, Any]) -> str:
        return render_gen_report(run_info=info, rows=rows, history=[{k: e.get(k) for k in history_columns}
                                                                    for e in epochs],
                                 grids=history.grids if history else [], grid_columns=columns, samples=samples,
                                 sample_columns=columns, interpolations=interpolations,
                                 reconstructions=reconstructions, coverage=evaluation.coverage if evaluation else None,
                                 per_class=evaluation.per_class if evaluation else [], class_names=spec.class_names)

    run_dir, run_info = write_run_folder(
        out, f"{kind}-{arch}-{dataset}", kind=kind, title=f"{arch} on {dataset}",
        subtitle="generative model: training and evaluation" if kind == "gen-train" else "generative model: evaluation",
        config={**config, "dataset": dataset, "seed": seed, "interpolation": method}, device=device, checks=[],
        timings=timings, render_html=html,
        tables={"results.csv": metrics, "history.csv": pd.DataFrame(epochs, columns=history_columns)},
        model={"arch": arch, "family": model.kind, "conditional": model.conditional,
               "checkpoint": str(checkpoint), "options": metadata.get("options", {}),
               "recipe": metadata.get("recipe", {}), "class_names": list(spec.class_names),
               "parameters": parameter_counts(model)["total"], "parameter_counts": parameter_counts(model)},
        feature_net=evaluation.feature_net if evaluation else "", metrics={r["metric"]: r["value"] for r in rows})
    return GenRunResult(run_dir, checkpoint, metrics, epochs, run_info)
