"""The study engine: runs any study's cells (cache, resume, failure isolation, progress) on this machine, in
processes or on a Ray cluster, and writes its run folder. See :mod:`trustkit.engine.core`."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trustkit.engine.backends import BACKENDS
from trustkit.engine.cache import CellCache
from trustkit.engine.core import RunResult, execute, run
from trustkit.engine.workloads import run_gen_eval, run_gen_train
from trustkit.studies.bench import MAX_CELLS, BenchConfig, bench_study, capped_jobs, suite_study

if TYPE_CHECKING:
    from trustkit.blackbox.substitute import SubstituteConfig, SubstituteResult
    from trustkit.detection.run import FakesConfig
    from trustkit.privacy.audit import AuditConfig
    from trustkit.blackbox.transfer import TransferConfig, TransferResult

BenchResult = RunResult  # what run_bench / run_suite return


def run_bench(config: BenchConfig, *, model: Any = None) -> RunResult:
    """Run every (attack, eps) cell of ``config`` and write ``<out>/<run-id>/`` (report.html, results.csv,
    per_class.csv, run.json). The folder appears only when complete. ``model`` (an ``nn.Module``) overrides
    ``config.model`` for Python callers; such runs are not cached."""
    study = bench_study(config, model=model)
    return run(study, out=config.out, device=config.device, backend=config.backend,
               jobs=capped_jobs(config.jobs, config.backend), use_cache=config.use_cache and model is None,
               ray_address=config.ray_address)


def run_suite(suite_name: str, *, out: str = "reports", device: str = "auto", data_root: str | None = None,
              download: bool = False, jobs: int = 1, use_cache: bool = True, probes: bool = True,
              max_cells: int = MAX_CELLS, n: int | None = None, seed: int | None = None, trust_code: bool = False,
              backend: str = "local", ray_address: str | None = None, curve_reuse: bool = True) -> RunResult:
    """Run every cell of a suite (name or YAML path), reusing cached cells; ``n``/``seed`` override the file's.
    ``trust_code`` comes from the command line only: a suite file cannot grant it. ``curve_reuse`` as in
    :class:`BenchConfig`."""
    study = suite_study(suite_name, n=n, seed=seed, jobs=jobs, device=device, data_root=data_root,
                        download=download, probes=probes, max_cells=max_cells, trust_code=trust_code,
                        use_cache=use_cache, curve_reuse=curve_reuse)
    return run(study, out=out, device=device, backend=backend, jobs=capped_jobs(jobs, backend),
               use_cache=use_cache, ray_address=ray_address)


def run_transfer(config: "TransferConfig") -> "TransferResult":
    """Craft on every source (and, for reference, on every target white-box), judge on every target; write
    ``<out>/<run-id>/`` (report.html with a success heat map per attack and eps, results.csv, run.json)."""
    from trustkit.blackbox.transfer import TransferResult
    from trustkit.studies.transfer import transfer_study

    result = run(transfer_study(config), out=config.out, device=config.device, backend=config.backend,
                 jobs=capped_jobs(config.jobs, config.backend), use_cache=config.use_cache,
                 ray_address=config.ray_address)
    return TransferResult(result.run_dir, result.results, result.checks, result.run_info)


def run_substitute(config: "SubstituteConfig") -> "SubstituteResult":
    """Train a substitute of ``config.target`` from label queries, transfer attacks from it, and write
    ``<out>/<run-id>/`` (report.html, results.csv, history.csv, run.json)."""
    from trustkit.blackbox.substitute import SubstituteResult
    from trustkit.studies.substitute import substitute_study

    result = run(substitute_study(config), out=config.out, device=config.device, backend=config.backend,
                 jobs=capped_jobs(config.jobs, config.backend), use_cache=config.use_cache,
                 ray_address=config.ray_address)
    return SubstituteResult(result.run_dir, result.results, result.tables["history.csv"], result.checks,
                            result.run_info)


def run_fakes(config: "FakesConfig") -> RunResult:
    """Build the real/fake data, train every detector on every generator, measure them (in-distribution and
    cross-generator AUC/AP/accuracy, degradations, evasion) and write ``<out>/<run-id>/``."""
    from trustkit.studies.fakes import fakes_study

    return run(fakes_study(config), out=config.out, device=config.device, backend=config.backend,
               jobs=capped_jobs(config.jobs, config.backend), use_cache=config.use_cache,
               ray_address=config.ray_address)


def run_audit(config: "AuditConfig") -> RunResult:
    """Audit what a model's features leak (inversion per layer and mitigation, re-identification, membership,
    model inversion) and write ``<out>/<run-id>/``: report.html, results.csv, layers.csv, membership.csv,
    model_inversion.csv and run.json."""
    from trustkit.studies.privacy_audit import audit_study

    return run(audit_study(config), out=config.out, device=config.device, backend=config.backend,
               jobs=capped_jobs(config.jobs, config.backend), use_cache=config.use_cache,
               ray_address=config.ray_address)


__all__ = ["BACKENDS", "BenchConfig", "BenchResult", "CellCache", "RunResult", "execute", "run", "run_bench",
           "run_audit", "run_fakes", "run_gen_eval", "run_gen_train",
           "run_substitute", "run_suite", "run_transfer"]
