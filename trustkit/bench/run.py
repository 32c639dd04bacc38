"""``trustkit bench``: evaluate attacks over an epsilon grid and write HTML + CSV + JSON reports."""
from __future__ import annotations

import datetime as _dt
import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from trustkit.atomic import atomic_dir
from trustkit.attacks import ATTACKS, format_eps, make_attack, parse_eps
from trustkit.attacks.base import ThreatModel
from trustkit.bench.evaluate import Predictions, clean_predictions, per_class_robust_accuracy, run_attack, summarize
from trustkit.data import get_spec, load_dataset
from trustkit.errors import InvalidArgumentError
from trustkit.models.loading import LoadedModel, resolve_model
from trustkit.report.metadata import environment
from trustkit.runtime import device_description, progress, seed_everything, select_device
from trustkit.sanity import Check, run_checks

GALLERY_SIZE = 8
RESULT_COLUMNS = ["suite", "model", "dataset", "defense", "attack", "engine", "norm", "eps", "seed", "n",
                  "clean_accuracy", "robust_accuracy", "robust_ci_low", "robust_ci_high", "success_rate",
                  "mean_linf", "mean_l2", "max_linf", "max_l2", "mean_adv_confidence", "queries", "seconds"]


@dataclass
class BenchConfig:
    """One ``bench`` run: attacks × epsilons on one model and data set.

    ``eps`` None means the data set's default grid for ``norm``; ``n`` None means the data set's default
    sample count (capped at the test split). ``attack_params`` go to every attack that accepts them.
    """

    attacks: list[str]
    model: str = "cnn"
    dataset: str = "digits"
    eps: list[float] | None = None
    norm: str = "linf"
    n: int | None = None
    batch_size: int = 256
    device: str = "auto"
    seed: int = 0
    out: str = "reports"
    data_root: str | None = None
    download: bool = False
    attack_params: dict[str, Any] = field(default_factory=dict)


@dataclass
class BenchResult:
    """What a bench run produced: the results frame, per-class rows, checks and the report folder."""

    run_dir: Path
    results: pd.DataFrame
    per_class: pd.DataFrame
    checks: list[Check]
    run_info: dict[str, Any]

    @property
    def report(self) -> Path:
        return self.run_dir / "report.html"


def _validate(config: BenchConfig) -> tuple[list[str], list[float]]:
    """Check everything cheap before any work starts, so bad input fails fast with nothing written."""
    spec = get_spec(config.dataset)
    attacks = [ATTACKS.canonical(a) for a in config.attacks]
    if not attacks:
        raise InvalidArgumentError("no attack given; name one, e.g. 'trustkit bench fgsm'")
    if config.n is not None and config.n < 1:
        raise InvalidArgumentError(f"--n must be at least 1, got {config.n}")
    if config.batch_size < 1:
        raise InvalidArgumentError(f"--batch-size must be at least 1, got {config.batch_size}")
    eps_grid = [parse_eps(e) for e in config.eps] if config.eps else list(spec.eps_grid(config.norm))
    for eps in eps_grid:
        ThreatModel(config.norm, eps)  # raises on a norm/eps outside the threat model
    for name in attacks:  # constructing once surfaces bad attack parameters before training anything
        make_attack(name, eps_grid[0], config.norm, **_params_for(name, config.attack_params))
    select_device(config.device)
    return attacks, sorted(set(eps_grid))


def _params_for(attack: str, params: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``params`` that attack class ``attack`` accepts."""
    import inspect

    accepted = inspect.signature(ATTACKS.get(attack).__init__).parameters
    return {k: v for k, v in params.items() if k in accepted and v is not None}


def _run_id(attacks: list[str], model: str, dataset: str, out: Path) -> str:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(model).stem if ("/" in model or "." in model) else model)
    base = f"{stamp}-{'+'.join(attacks)}-{stem}-{dataset}"
    run_id, counter = base, 2
    while (out / run_id).exists():
        run_id, counter = f"{base}-{counter}", counter + 1
    return run_id


def _subset(n_total: int, n: int | None, default_n: int, seed: int) -> torch.Tensor:
    count = min(n or default_n, n_total)
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))[:count].sort().values


def _model_summary(loaded: LoadedModel) -> dict[str, Any]:
    meta = loaded.metadata
    summary: dict[str, Any] = {}
    for key in ("arch", "dataset", "seed"):
        if key in meta:
            summary[key] = meta[key]
    if "recipe" in meta:
        summary["training recipe"] = ", ".join(f"{k}={v}" for k, v in meta["recipe"].items())
    if meta.get("metrics", {}).get("clean_accuracy") is not None:
        summary["test accuracy at training"] = f"{meta['metrics']['clean_accuracy']:.2%}"
    if "format" in meta and meta["format"] != "trustkit-checkpoint":
        summary["format"] = meta["format"]
    summary["parameters"] = f"{sum(p.numel() for p in loaded.module.parameters()):,}"
    return summary


def run_bench(config: BenchConfig) -> BenchResult:
    """Run every (attack, eps) cell of ``config`` and write ``<out>/<run-id>/`` (report.html, results.csv,
    per_class.csv, run.json). The folder appears only when complete."""
    started = time.perf_counter()
    attacks, eps_grid = _validate(config)
    spec = get_spec(config.dataset)
    device = select_device(config.device)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    loaded = resolve_model(config.model, spec.name, data_root=config.data_root, device=device,
                           download=config.download)
    timings["model"] = time.perf_counter() - t0
    model = loaded.module

    t0 = time.perf_counter()
    test_set = load_dataset(spec.name, "test", config.data_root, config.download)
    index = _subset(len(test_set), config.n, spec.default_n, config.seed)
    x, y = test_set.tensors(index)
    timings["data"] = time.perf_counter() - t0

    clean = clean_predictions(model, x, batch_size=config.batch_size, device=device)
    gallery_index = (clean.label == y).nonzero().squeeze(1)[:GALLERY_SIZE]

    rows, class_rows, outcomes = [], [], []
    t0 = time.perf_counter()
    with progress(f"bench {'+'.join(attacks)} on {loaded.name}", len(attacks) * len(eps_grid) * len(x)) as bar:
        for name in attacks:
            for eps in eps_grid:
                seed_everything(config.seed)
                attack = make_attack(name, eps, config.norm, **_params_for(name, config.attack_params))
                bar.note(f"{name} eps {format_eps(eps)}")
                outcome = run_attack(model, attack, x, y, clean, batch_size=config.batch_size, device=device,
                                     gallery_index=gallery_index, bar=bar)
                outcomes.append(outcome)
                rows.append({"suite": "", "model": loaded.name, "dataset": spec.name, "defense": "none",
                             "attack": name, "engine": "trustkit", "norm": config.norm, "eps": eps,
                             "seed": config.seed, "queries": float("nan"), **summarize(outcome, y, clean)})
                for row in per_class_robust_accuracy(outcome, y, clean, spec.num_classes):
                    class_rows.append({"attack": name, "norm": config.norm, "eps": eps,
                                       "class_name": spec.class_names[row["class_index"]], **row})
    timings["attacks"] = time.perf_counter() - t0

    results = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    per_class = pd.DataFrame(class_rows)
    checks = run_checks(results)
    out = Path(config.out)
    run_id = _run_id(attacks, loaded.name, spec.name, out)
    timings["total"] = time.perf_counter() - started
    run_info = {
        "run_id": run_id,
        "kind": "bench",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": {**asdict(config), "attacks": attacks, "eps": eps_grid, "n": len(x), "model_source": loaded.source},
        "seed": config.seed,
        "device": device_description(device),
        "model": {"name": loaded.name, "source": loaded.source, "summary": _model_summary(loaded),
                  "metadata": {k: v for k, v in loaded.metadata.items() if k != "history"}},
        "attacks": {o.attack.name + f"@{format_eps(o.attack.eps)}": o.attack.params() for o in outcomes},
        "sanity_checks": [c.to_dict() for c in checks],
        "timings_seconds": {k: round(v, 3) for k, v in timings.items()},
        **environment(),
    }
    with atomic_dir(out / run_id) as tmp:
        results.to_csv(tmp / "results.csv", index=False)
        per_class.to_csv(tmp / "per_class.csv", index=False)
        (tmp / "run.json").write_text(json.dumps(run_info, indent=2, default=str) + "\n", encoding="utf-8")
        from trustkit.report.bench_report import write_bench_report

        write_bench_report(tmp / "report.html", results=results, per_class=per_class, checks=checks,
                           run_info=run_info, x=x, y=y, clean=clean, outcomes=outcomes,
                           gallery_index=gallery_index, class_names=spec.class_names)
    run_dir = out / run_id
    return BenchResult(run_dir, results, per_class, checks, run_info)


__all__ = ["BenchConfig", "BenchResult", "Predictions", "RESULT_COLUMNS", "run_bench"]
