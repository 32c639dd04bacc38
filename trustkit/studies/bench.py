"""The robustness study (``trustkit bench`` and suites): attacks × epsilons × models × defenses, as cells.

:class:`BenchConfig` is what one ``bench`` command asks for; :func:`bench_study` validates it (names,
parameters, threat model, cell count — all before any work) and :func:`suite_study` does the same for a suite
file. Both give a :class:`BenchStudy`, which the engine runs (``trustkit.engine.run``); what one cell computes
is in :mod:`trustkit.studies.bench_cells`.
"""
from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Sequence

import pandas as pd
import torch

from trustkit.attacks import parse_eps
from trustkit.attacks.evaluate import TARGET_POLICIES
from trustkit.attacks.precision import check_precision
from trustkit.attacks.spec import build_attacks
from trustkit.data import get_spec
from trustkit.errors import InvalidArgumentError
from trustkit.models import MODELS
from trustkit.runtime import check_run_options, log
from trustkit.sanity import Check, run_checks
from trustkit.studies.base import Memo, Progress, StudyOutput, TrainStep
from trustkit.studies.bench_cells import (Cell, GroupContext, build_cell_attack, build_context, cell_key,
                                          compile_group, curve, curve_cells, defense_cells, evaluate_cell, model_info,
                                          probe_checks, probe_key, reusing_curves)

MAX_CELLS = 10_000  # a run expanding past this is refused before anything runs (--max-cells raises it)
RESULT_COLUMNS = ["suite", "model", "dataset", "defense", "evaluation", "attack", "engine", "access", "targets",
                  "attack_params", "precision", "norm", "eps", "seed", "n",
                  "clean_accuracy", "robust_accuracy", "robust_ci_low", "robust_ci_high", "success_rate",
                  "mean_linf", "mean_l2", "max_linf", "max_l2", "mean_adv_confidence", "queries", "seconds",
                  "broken_by", "reused"]
PER_CLASS_COLUMNS = ["model", "dataset", "defense", "evaluation", "attack", "engine", "norm", "eps", "class_index",
                     "class_name", "n", "clean_accuracy", "robust_accuracy"]
# the columns that tell a bench study's rows apart (the terminal table shows those that vary)
KEY_COLUMNS = ["model", "dataset", "defense", "evaluation", "attack", "engine", "targets", "norm", "eps"]


@dataclass
class BenchConfig:
    """One ``bench`` run: attacks × epsilons on one or more models (comma-separated) and one data set.

    ``attacks`` are registry names or ``art:ClassName``; ``engine="art"`` runs registry names with ART's
    implementation. ``eps`` None means the data set's default grid for ``norm``; ``n`` None means the data
    set's default sample count (capped at the test split). ``attack_params`` go to every attack that takes
    them (e.g. steps); ``strict_params`` too, but each must be taken by at least one attack.
    ``probes`` runs the model sanity probes (unbounded attack, gradients, outputs) on 100 images;
    ``use_cache`` reuses finished cells from ``$TRUSTKIT_HOME/cells``. ``defenses`` (e.g. ``["none", "jpeg"]``)
    wraps the model in input defenses, each attacked naive and adaptive (BPDA/EOT). ``curve_reuse`` (default)
    lets each budget of an ε grid attack only the samples the same attack left standing at the smaller budgets
    (untargeted white-box bounded attacks; ``reused`` counts the rest); False attacks every ε from scratch.
    ``trust_code`` allows
    TorchScript / ``package.module:factory`` models, which run their own code when loaded (``--trust-code``).
    ``backend`` is where cells run (``local``, ``processes``, ``ray``; ``ray_address`` joins a cluster).
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
    precision: str = "fp32"  # gradients of attack iterations: fp32, bf16, fp16 (verdicts in fp32; attacks.precision)
    trust_code: bool = False  # the user's consent to models that are programs (TorchScript, factories)
    backend: str = "local"  # where cells run: "local" (with jobs > 1: processes), "processes", "ray"
    ray_address: str | None = None  # --backend ray: join this cluster ("auto", "HOST:PORT"); None starts one
    curve_reuse: bool = True  # larger budgets attack only what smaller ones left standing (same attack)
    compile: bool = False  # torch.compile the attacked model where measured faster (trustkit.models.compiled)


def capped_jobs(jobs: int, backend: str = "local") -> int:
    """``jobs``, at most the number of CPU cores (more local processes only fight over them), with a warning.
    A Ray cluster may have more cores than this machine: its jobs are not capped."""
    cores = os.cpu_count() or 1
    if jobs > cores and backend != "ray":
        log(f"warning: --jobs {jobs} is more than the {cores} CPU cores here; using --jobs {cores}")
        return cores
    return jobs


def check_cell_count(count: int, max_cells: int, what: str) -> None:
    """Refuse a run of more than ``max_cells`` cells before any of them is built or run."""
    if count > max_cells:
        raise InvalidArgumentError(f"{what} expands to {count:,} cells, more than the cap of {max_cells:,}; "
                                   "trim it, or raise the cap with --max-cells")


@dataclass
class BenchStudy:
    """Bench cells ready for the engine, with what the report and run.json say about them."""

    cell_list: list[Cell]
    config: dict[str, Any]
    kind: str = "bench"
    label: str = "bench"
    title: str = ""
    subtitle: str = ""
    data_root: str | None = None
    download: bool = False
    trust_code: bool = False
    probes: bool = True
    model: Any = None  # an nn.Module replacing every cell's model (Python callers; never cached)
    compile: bool = False  # torch.compile each group's model where measured faster (CUDA)

    # --- what the engine asks -----------------------------------------------------------------------------
    def cells(self) -> Sequence[Cell]:
        return self.cell_list

    def description(self) -> str:
        return self.label if self.kind == "suite" else f"bench on {self.config.get('model')}"

    def settings(self) -> dict[str, Any]:
        return self.config

    def prerequisites(self) -> list[TrainStep]:
        if self.model is not None:
            return []
        pairs = dict.fromkeys((c.model, c.dataset) for c in self.cell_list)
        return [TrainStep(m, d, self.data_root, self.download) for m, d in pairs if m in MODELS]

    def prepare(self, cells: Sequence[Cell], device: torch.device) -> GroupContext:
        return build_context(cells[0], device, self.data_root, self.download, self.model, self.trust_code)

    def key(self, cell: Cell, state: GroupContext, device_type: str) -> str | None:
        if state.fingerprint is None:
            return None
        return cell_key(cell, state.fingerprint, state.data_fingerprint, build_cell_attack(state, cell).params(),
                        device_type, compiled=self.compile and device_type != "cpu")

    def affinity(self, cell: Cell) -> tuple | None:
        """Cells of one reusing ε-curve run in one process, one after another (see :func:`reusing_curves`)."""
        return curve(cell) if curve(cell) in self._reusing_curves else None

    @functools.cached_property
    def _reusing_curves(self) -> set[tuple]:
        return reusing_curves(self.cell_list)

    def run(self, cell: Cell, state: GroupContext, device: torch.device, bar: Progress | None) -> dict[str, Any]:
        if self.compile and state.compile_info is None:
            compile_group(state, cell.batch_size, device)
        return evaluate_cell(state, cell, device, bar)

    def portable(self, state: GroupContext) -> GroupContext:
        return state.to(torch.device("cpu"))

    def localize(self, state: GroupContext, device: torch.device) -> GroupContext:
        return state.to(device)

    def finish_group(self, cells: Sequence[Cell], state: GroupContext, device: torch.device,
                     memo: Memo) -> dict[str, Any]:
        info = model_info(state)
        if self.compile:
            if state.compile_info is None:
                compile_group(state, cells[0].batch_size, device)
            info["compile"] = state.compile_info
        if self.probes:
            info["probes"] = memo(probe_key(state, cells[0], device.type),
                                  lambda: {"checks": probe_checks(state, cells[0], device)})["checks"]
        return info

    # --- what the report and run.json show ----------------------------------------------------------------
    def frames(self, output: StudyOutput) -> dict[str, pd.DataFrame]:
        done = output.finished
        for record in done:  # the suite name is this run's (it does not affect numbers, nor the cache key)
            record.data["row"]["suite"] = record.cell.suite
        results = pd.DataFrame([r.data["row"] for r in done], columns=RESULT_COLUMNS)
        per_class = pd.DataFrame([{**{k: r.data["row"][k] for k in PER_CLASS_COLUMNS[:8]}, **p}
                                  for r in done for p in r.data["per_class"]], columns=PER_CLASS_COLUMNS)
        return {"results.csv": results, "per_class.csv": per_class}

    def checks(self, tables: dict[str, pd.DataFrame], output: StudyOutput) -> list[Check]:
        return run_checks(tables["results.csv"])

    def group_checks(self, output: StudyOutput) -> list[Check]:
        return [Check(f"{group_name(info, group)}: {c['name']}", c["status"], c["detail"], c.get("anchor", ""))
                for group, info in output.groups.items() for c in info.get("probes", [])]

    def headline(self, output: StudyOutput) -> tuple[str, str, str]:
        groups = list(output.groups.values())  # "{n}", "{models}": known once the models and data are loaded
        names = "+".join(dict.fromkeys(g["name"] for g in groups)) or str(self.config.get("model"))
        return (self.label.replace("{models}", names[:60]), self.title.replace("{models}", names.replace("+", ", ")),
                self.subtitle.replace("{n}", str(groups[0]["n"] if groups else "no")))

    def run_extras(self, output: StudyOutput) -> dict[str, Any]:
        return {"models": [{k: v for k, v in info.items() if k != "probes"} for info in output.groups.values()],
                "attacks": [{"cell": r.cell.title(), **r.data["attack_params"]} for r in output.finished],
                "model_probes": {group_name(info, group): info.get("probes", [])
                                 for group, info in output.groups.items()}}


def group_name(info: dict[str, Any], group: tuple) -> str:
    """How reports name a group: ``cnn/digits`` or ``cnn/digits + jpeg(quality=75)``."""
    return f"{info['name']}/{group[1]}" + ("" if group[2] == "none" else f" + {group[2]}")


def bench_study(config: BenchConfig, *, model: Any = None) -> BenchStudy:
    """Validate ``config`` (everything that can be checked before work starts) and expand it into cells."""
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
    check_precision(config.precision)
    if config.targets not in TARGET_POLICIES:
        raise InvalidArgumentError(f"unknown --targets '{config.targets}'; use one of: {', '.join(TARGET_POLICIES)}")
    cells = [Cell(m, spec.name, attack, config.norm, eps, config.n, config.seed, config.batch_size, defense,
                  evaluation=evaluation, targets=config.targets if attack.params.get("targeted") is True else "",
                  precision=config.precision)
             for m in models for defense, evaluation in defense_cells(config.defenses)
             for attack in attacks for eps in eps_grid]
    if config.curve_reuse:
        cells = curve_cells(cells, config.batch_size)
    names = [a.name for a in attacks]
    settings = {**asdict(config), "eps": eps_grid, "attacks": names}
    label = f"{'+'.join(a.replace('art:', 'art-') for a in names)[:60]}-{{models}}-{spec.name}"
    return BenchStudy(cells, settings, "bench", label, f"How far can you trust {{models}} on {spec.name}?",
                      f"Robustness report · {', '.join(names)} · {{n}} test images", config.data_root, config.download,
                      config.trust_code, config.probes, model, config.compile)


def suite_study(name_or_path: str, *, n: int | None = None, seed: int | None = None, jobs: int = 1,
                device: str = "auto", data_root: str | None = None, download: bool = False, probes: bool = True,
                max_cells: int = MAX_CELLS, trust_code: bool = False, use_cache: bool = True,
                curve_reuse: bool = True) -> BenchStudy:
    """A suite (name or YAML path) as a bench study; ``n``/``seed`` override the file's. ``trust_code`` comes
    from the command line only: a suite file cannot grant it."""
    from trustkit.studies.suite import load_suite

    suite = load_suite(name_or_path)
    suite = replace(suite, n=n if n is not None else suite.n, seed=seed if seed is not None else suite.seed)
    check_run_options(suite.n, suite.batch_size, jobs, device)
    check_cell_count(suite.cell_count(), max_cells, f"suite {suite.name}")
    for attack in suite.attacks:  # surface bad attack parameters before any training
        attack.build(suite.threat_models[0][1][0], suite.threat_models[0][0], suite.batch_size)
    cells = curve_cells(suite.cells(), suite.batch_size) if curve_reuse else suite.cells()
    settings = {"suite": suite.name, "suite_file": suite.source, "description": suite.description,
                "models": suite.models, "datasets": suite.datasets, "attacks": [a.describe() for a in suite.attacks],
                "threat_models": [{"norm": norm, "eps": grid} for norm, grid in suite.threat_models],
                "n": suite.n, "seed": suite.seed, "batch_size": suite.batch_size, "device": device,
                "data_root": data_root, "use_cache": use_cache}
    attacks = BenchStudy(cells, settings, "suite", f"suite-{suite.name}", f"Suite {suite.name}",
                         suite.description or f"{len(cells)} cells", data_root, download, trust_code, probes)
    if not suite.studies:
        return attacks
    return combined_suite(suite, attacks, device=device, data_root=data_root, download=download,
                          trust_code=trust_code, use_cache=use_cache)


def combined_suite(suite: Any, attacks: BenchStudy, *, device: str, data_root: str | None, download: bool,
                   trust_code: bool, use_cache: bool) -> Any:
    """A suite with ``studies:``: its attacks and, per data set, each named study on the suite's models, as one
    :class:`trustkit.studies.combined.CombinedStudy` (one run, one report)."""
    from dataclasses import fields

    from trustkit.errors import TrustkitError
    from trustkit.studies.combined import CombinedStudy, part_config_class, part_study
    from trustkit.yamlspec import SpecError

    parts: list[Any] = [attacks]
    for dataset in suite.datasets:
        for kind, settings in suite.studies:
            names = {f.name for f in fields(part_config_class(kind))}
            shared = {"models": tuple(suite.models), "dataset": dataset, "seed": suite.seed, "device": device,
                      "data_root": data_root, "download": download, "trust_code": trust_code, "use_cache": use_cache}
            try:
                parts.append(part_study(kind, {**{k: v for k, v in shared.items() if k in names}, **settings}))
            except TrustkitError as exc:
                raise SpecError(f"{suite.source}: study {kind} on {dataset}: {exc}") from None
    kinds = ", ".join(dict.fromkeys(p.kind for p in parts[1:]))
    return CombinedStudy(parts, f"suite-{suite.name}", f"Suite {suite.name}",
                         f"{suite.description or 'attacks'} · attacks and {kinds}", attacks.config)
