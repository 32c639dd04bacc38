"""``trustkit bench``: evaluate attacks over an epsilon grid and write HTML + CSV + JSON reports."""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from trustkit.tables import write_csv
from trustkit.atomic import atomic_dir
from trustkit.attacks import parse_eps
from trustkit.attacks.base import ThreatModel
from trustkit.bench.cells import Cell, CellCache
from trustkit.bench.evaluate import TARGET_POLICIES
from trustkit.bench.runner import RunOutput, run_cells
from trustkit.bench.spec import AttackSpec, check_params_used
from trustkit.data import get_spec
from trustkit.errors import InvalidArgumentError
from trustkit.report.metadata import environment
from trustkit.runtime import device_description, log, select_device
from trustkit.sanity import Check, run_checks

MAX_CELLS = 10_000  # a run expanding past this is refused before anything runs (--max-cells raises it)
RESULT_COLUMNS = ["suite", "model", "dataset", "defense", "evaluation", "attack", "engine", "access", "targets",
                  "attack_params", "norm", "eps", "seed", "n",
                  "clean_accuracy", "robust_accuracy", "robust_ci_low", "robust_ci_high", "success_rate",
                  "mean_linf", "mean_l2", "max_linf", "max_l2", "mean_adv_confidence", "queries", "seconds",
                  "broken_by"]
PER_CLASS_COLUMNS = ["model", "dataset", "defense", "evaluation", "attack", "engine", "norm", "eps", "class_index", "class_name",
                     "n", "clean_accuracy", "robust_accuracy"]


@dataclass
class BenchConfig:
    """One ``bench`` run: attacks × epsilons on one or more models (comma-separated) and one data set.

    ``attacks`` are registry names or ``art:ClassName``; ``engine="art"`` runs registry names with ART's
    implementation. ``eps`` None means the data set's default grid for ``norm``; ``n`` None means the data
    set's default sample count (capped at the test split). ``attack_params`` go to every attack that takes
    them (e.g. steps); ``strict_params`` too, but each must be taken by at least one attack.
    ``probes`` runs the model sanity probes (unbounded attack, gradients, outputs) on 100 images;
    ``use_cache`` reuses finished cells from ``$TRUSTKIT_HOME/cells``. ``defenses`` (e.g. ``["none", "jpeg"]``)
    wraps the model in input defenses, each attacked naive and adaptive (BPDA/EOT). ``trust_code`` allows
    TorchScript / ``package.module:factory`` models, which run their own code when loaded (``--trust-code``).
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
    engine: str = "trustkit"
    attack_params: dict[str, Any] = field(default_factory=dict)
    strict_params: dict[str, Any] = field(default_factory=dict)
    probes: bool = True
    use_cache: bool = True
    jobs: int = 1
    defenses: list[str] = field(default_factory=list)
    max_cells: int = MAX_CELLS
    targets: str = "random"  # targeted attacks (-p targeted=true): "random" or "least-likely" target labels
    trust_code: bool = False  # the user's consent to models that are programs (TorchScript, factories)


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


def check_run_options(n: int | None, batch_size: int, jobs: int, device: str) -> None:
    if n is not None and n < 1:
        raise InvalidArgumentError(f"--n must be at least 1, got {n}")
    if batch_size < 1:
        raise InvalidArgumentError(f"--batch-size must be at least 1, got {batch_size}")
    if jobs < 1:
        raise InvalidArgumentError(f"--jobs must be at least 1, got {jobs}")
    select_device(device)


def capped_jobs(jobs: int) -> int:
    """``jobs``, at most the number of CPU cores (more processes only fight over them), with a warning."""
    cores = os.cpu_count() or 1
    if jobs > cores:
        log(f"warning: --jobs {jobs} is more than the {cores} CPU cores here; using --jobs {cores}")
        return cores
    return jobs


def check_cell_count(count: int, max_cells: int, what: str) -> None:
    """Refuse a run of more than ``max_cells`` cells before any of them is built or run."""
    if count > max_cells:
        raise InvalidArgumentError(f"{what} expands to {count:,} cells, more than the cap of {max_cells:,}; "
                                   "trim it, or raise the cap with --max-cells")


def build_attacks(names: list[str], engine: str, params: dict[str, Any], strict: dict[str, Any], norm: str,
                  eps_grid: list[float], batch_size: int) -> list[AttackSpec]:
    """Parse and try-construct every attack, so bad names or parameters fail before any work starts."""
    if not names:
        raise InvalidArgumentError("no attack given; name one, e.g. 'trustkit bench fgsm'")
    merged = {**{k: v for k, v in params.items() if v is not None}, **strict}
    specs = [AttackSpec.parse(a, engine, merged) for a in names]
    check_params_used(specs, strict)
    for eps in eps_grid:
        ThreatModel(norm, eps)  # raises on a norm/eps outside the threat model
    for spec in specs:
        spec.build(eps_grid[0], norm, batch_size)
    return specs


def defense_cells(defenses: list[str]) -> list[tuple[str, str]]:
    """``(defense description, evaluation)`` pairs: "none" is evaluated as is, every defense naive and adaptive."""
    from trustkit.defenses import make_defense

    pairs = []
    for name in defenses or ["none"]:
        if name == "none":
            pairs.append(("none", "standard"))
        else:
            described = make_defense(name).describe()
            pairs += [(described, "naive"), (described, "adaptive")]
    return list(dict.fromkeys(pairs))


def _cells(config: BenchConfig) -> list[Cell]:
    spec = get_spec(config.dataset)
    check_run_options(config.n, config.batch_size, config.jobs, config.device)
    eps_grid = sorted({parse_eps(e) for e in config.eps}) if config.eps else list(spec.eps_grid(config.norm))
    attacks = build_attacks(config.attacks, config.engine, config.attack_params, config.strict_params, config.norm,
                            eps_grid, config.batch_size)
    models = [m.strip() for m in config.model.split(",") if m.strip()] if isinstance(config.model, str) else ["model"]
    if not models:
        raise InvalidArgumentError("no model given; name one, e.g. --model cnn")
    check_cell_count(len(models) * len(defense_cells(config.defenses)) * len(attacks) * len(eps_grid),
                     config.max_cells, "this bench run")
    if config.targets not in TARGET_POLICIES:
        raise InvalidArgumentError(f"unknown --targets '{config.targets}'; use one of: {', '.join(TARGET_POLICIES)}")
    return [Cell(model, spec.name, attack, config.norm, eps, config.n, config.seed, config.batch_size, defense,
                 evaluation=evaluation, targets=config.targets if attack.params.get("targeted") is True else "")
            for model in models for defense, evaluation in defense_cells(config.defenses)
            for attack in attacks for eps in eps_grid]


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def new_run_id(label: str, out: Path) -> str:
    """``<date>-<time>-<label>``, made unique within ``out``."""
    base = f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{safe_name(label)[:80]}"
    run_id, counter = base, 2
    while (out / run_id).exists():
        run_id, counter = f"{base}-{counter}", counter + 1
    return run_id


def frames(output: RunOutput) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tidy results frame and the per-class frame of a run, in cell order."""
    results = pd.DataFrame([r.row for r in output.results], columns=RESULT_COLUMNS)
    per_class = pd.DataFrame([{**{k: r.row[k] for k in ("model", "dataset", "defense", "evaluation", "attack", "engine",
                                                         "norm", "eps")},
                               **p} for r in output.results for p in r.per_class], columns=PER_CLASS_COLUMNS)
    return results, per_class


def write_run(out: Path, label: str, output: RunOutput, config: dict[str, Any], *, title: str, subtitle: str,
              timings: dict[str, float], kind: str = "bench") -> BenchResult:
    """Write ``<out>/<run-id>/`` (results.csv, per_class.csv, run.json, report.html) atomically."""
    from trustkit.report.bench_report import write_bench_report

    results, per_class = frames(output)
    checks = run_checks(results)
    run_id = new_run_id(label, out)
    device = select_device(config.get("device", "auto"))
    run_info = {
        "run_id": run_id, "kind": kind, "title": title, "subtitle": subtitle,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": config, "seed": config.get("seed"), "device": device_description(device),
        "models": [{k: v for k, v in info.items()} for info in output.models.values()],
        "attacks": [{"cell": r.cell.title(), **r.attack_params} for r in output.results],
        "sanity_checks": [c.to_dict() for c in checks],
        "model_probes": {info["name"] + "/" + str(group[1]) + ("" if group[2] == "none" else f" + {group[2]}"):
                         [c.to_dict() for c in output.probes.get(group, [])] for group, info in output.models.items()},
        "cells": {"total": len(output.results), "computed": output.computed,
                  "from_cache": len(output.results) - output.computed},
        "timings_seconds": {k: round(v, 3) for k, v in timings.items()},
        **environment(),
    }
    with atomic_dir(out / run_id) as tmp:
        write_csv(results, tmp / "results.csv")
        write_csv(per_class, tmp / "per_class.csv")
        (tmp / "run.json").write_text(json.dumps(run_info, indent=2, default=str) + "\n", encoding="utf-8")
        write_bench_report(tmp / "report.html", output=output, results=results, checks=checks, run_info=run_info)
    probes = [Check(f"{output.models[group]['name']}/{group[1]}" + ("" if group[2] == "none" else f" + {group[2]}")
                    + f": {c.name}", c.status, c.detail, c.anchor)
              for group, group_probes in output.probes.items() for c in group_probes]
    return BenchResult(out / run_id, results, per_class, checks + probes, run_info)


def run_bench(config: BenchConfig, *, model: Any = None) -> BenchResult:
    """Run every (attack, eps) cell of ``config`` and write ``<out>/<run-id>/`` (report.html, results.csv,
    per_class.csv, run.json). The folder appears only when complete. ``model`` (an ``nn.Module``) overrides
    ``config.model`` for Python callers; such runs are not cached."""
    started = time.perf_counter()
    cells = _cells(config)
    output = run_cells(cells, device=config.device, data_root=config.data_root, download=config.download,
                       jobs=capped_jobs(config.jobs), cache=CellCache(enabled=config.use_cache and model is None),
                       probes=config.probes, description=f"bench on {config.model}", model=model,
                       trust_code=config.trust_code)
    name = ", ".join(dict.fromkeys(r.row["model"] for r in output.results))
    attacks = list(dict.fromkeys(c.attack.name for c in cells))
    settings = {**asdict(config), "eps": sorted({c.eps for c in cells}), "attacks": attacks}
    return write_run(Path(config.out), f"{'+'.join(a.replace('art:', 'art-') for a in attacks)[:60]}-"
                     f"{name.replace(', ', '+')[:60]}-{cells[0].dataset}", output, settings,
                     title=f"How far can you trust {name} on {cells[0].dataset}?",
                     subtitle=f"Robustness report · {', '.join(attacks)} · {output.models[cells[0].group]['n']} test images",
                     timings={"total": time.perf_counter() - started})


def run_suite(suite_name: str, *, out: str = "reports", device: str = "auto", data_root: str | None = None,
              download: bool = False, jobs: int = 1, use_cache: bool = True, probes: bool = True,
              max_cells: int = MAX_CELLS,
              n: int | None = None, seed: int | None = None, trust_code: bool = False) -> BenchResult:
    """Run every cell of a suite (name or YAML path), reusing cached cells; ``n``/``seed`` override the file's.
    ``trust_code`` comes from the command line only: a suite file cannot grant it."""
    from dataclasses import replace

    from trustkit.bench.suite import load_suite

    started = time.perf_counter()
    suite = load_suite(suite_name)
    suite = replace(suite, n=n if n is not None else suite.n, seed=seed if seed is not None else suite.seed)
    check_run_options(suite.n, suite.batch_size, jobs, device)
    check_cell_count(suite.cell_count(), max_cells, f"suite {suite.name}")
    jobs = capped_jobs(jobs)
    for attack in suite.attacks:  # surface bad attack parameters before any training
        attack.build(suite.threat_models[0][1][0], suite.threat_models[0][0], suite.batch_size)
    cells = suite.cells()
    output = run_cells(cells, device=device, data_root=data_root, download=download, jobs=jobs,
                       cache=CellCache(enabled=use_cache), probes=probes, description=f"suite {suite.name}",
                       trust_code=trust_code)
    settings = {"suite": suite.name, "suite_file": suite.source, "description": suite.description,
                "models": suite.models, "datasets": suite.datasets, "attacks": [a.describe() for a in suite.attacks],
                "threat_models": [{"norm": norm, "eps": grid} for norm, grid in suite.threat_models],
                "n": suite.n, "seed": suite.seed, "batch_size": suite.batch_size, "device": device, "jobs": jobs,
                "data_root": data_root, "use_cache": use_cache}
    return write_run(Path(out), f"suite-{suite.name}", output, settings, kind="suite",
                     title=f"Suite {suite.name}", subtitle=suite.description or f"{len(cells)} cells",
                     timings={"total": time.perf_counter() - started})


__all__ = ["BenchConfig", "BenchResult", "RESULT_COLUMNS", "run_bench", "run_suite", "write_run"]
