"""Run a study: resolve it once, reuse cached cells, run the rest on a backend, write one run folder.

:func:`execute` is the whole life of a study before its report:

1. its cells are expanded and validated (a bad spec fails before any work);
2. its prerequisites are met: a zoo model that is not trained yet is trained now, once, under the store's lock
   — a step scheduled here, not something loading a model does behind the caller's back;
3. every group is resolved in this process — device, model, data sample, fingerprints — and each cell's
   cache key computed from them;
4. cached cells are read back; the others run on the backend (:mod:`trustkit.engine.backends`), each stored
   in the cache the moment it finishes, so a run killed at any point resumes where it stopped;
5. a cell that fails is recorded with its one-line error and the others still run.

:func:`run` then renders the study's report and writes ``<out>/<run-id>/`` through :mod:`trustkit.rundir`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Hashable

import pandas as pd
import torch

from trustkit.engine.backends import check_backend, ray_device, run_local, run_processes, run_ray, start_ray
from trustkit.engine.cache import CellCache
from trustkit.errors import TrustkitError
from trustkit.runtime import ProgressTask, format_duration, log, progress, select_device
from trustkit.sanity import Check
from trustkit.studies.base import CellRecord, Study, StudyOutput, one_line


class _CellBar:
    """One cell's share of the study's bar: the cell reports fractions of itself; whatever it did not report
    is added when it ends, so the bar counts exactly one per cell."""

    def __init__(self, bar: ProgressTask) -> None:
        self.bar, self.done = bar, 0.0

    def advance(self, amount: float = 1) -> None:
        amount = min(amount, 1.0 - self.done)
        if amount > 0:
            self.done += amount
            self.bar.advance(amount)

    def note(self, text: str) -> None:
        self.bar.note(text)

    def finish(self) -> None:
        self.advance(1.0 - self.done)


def _ensure_prerequisites(study: Study, device: torch.device) -> None:
    steps = study.prerequisites()
    if not steps:
        return
    from trustkit.generative.run import ensure_generator  # each trains only what is missing, once, under the
    from trustkit.train.zoo import ensure_trained  # store entry's lock

    for step in steps:
        if step.kind == "generator":
            ensure_generator(step.model, step.dataset, device=device, data_root=step.data_root, download=step.download)
        else:
            ensure_trained(step.model, step.dataset, device=device, data_root=step.data_root, download=step.download,
                           recipe=step.recipe, eps=step.eps)


def execute(study: Study, *, device: str = "auto", backend: str = "local", jobs: int = 1,
            cache: CellCache | None = None, ray_address: str | None = None, gpus_per_cell: float | None = None,
            description: str | None = None) -> StudyOutput:
    """Run every cell of ``study``; records in cell order. ``backend`` is ``local`` (``jobs`` > 1: processes),
    ``processes`` or ``ray`` (``ray_address``: join that cluster; else a local one with ``jobs`` CPUs).
    Cells that cannot be cached (no model fingerprint, e.g. an in-memory model) always run in this process."""
    check_backend(backend, ray_address)
    if backend == "local" and jobs > 1:
        backend = "processes"
    cells = list(study.cells())
    cache = cache or CellCache()
    started_ray = backend == "ray" and start_ray(ray_address, jobs)
    try:
        run_type = ray_device(device) if backend == "ray" else select_device(device).type
        here = select_device("cpu" if backend == "ray" and run_type == "cuda" and not torch.cuda.is_available()
                             else device)
        _ensure_prerequisites(study, here)
        return _execute(study, cells, here, run_type, backend, jobs, cache, gpus_per_cell,
                        description or study.kind)
    finally:
        if started_ray:
            import ray

            ray.shutdown()


def _execute(study: Study, cells: list[Any], here: torch.device, run_type: str, backend: str, jobs: int,
             cache: CellCache, gpus_per_cell: float | None, description: str) -> StudyOutput:
    groups: dict[Hashable, list[int]] = {}
    for index, cell in enumerate(cells):
        groups.setdefault(cell.group, []).append(index)
    out = StudyOutput([CellRecord(cell, None) for cell in cells])
    states: dict[Hashable, Any] = {}
    keys: dict[int, str | None] = {}
    local, remote = [], []
    started = time.monotonic()
    with progress(description, len(cells)) as bar:
        def report(index: int, data: dict[str, Any] | None, error: str | None) -> None:
            record = out.records[index]
            if record.data is not None or record.error is not None:
                return  # a retried task reporting twice: the first answer stands
            record.data, record.error = data, error
            if data is not None:
                cache.store(keys.get(index), data)
                out.computed += 1
            if index not in local_set:
                bar.advance(1)
            # a milestone: without a terminal (a log, nohup) it is also a line, at most one per 10 s
            text, last = cell_progress(cells[index].title(), error, out, started)
            bar.note(text, milestone=True, force_line=last)

        for group, members in groups.items():
            try:
                states[group] = study.prepare([cells[i] for i in members], here)
            except TrustkitError:
                raise  # the user's mistake (unknown model, missing data): one line, nothing run
            except Exception as exc:  # this group cannot run; the other groups still do
                for i in members:
                    out.records[i].error = one_line(exc)
                    bar.advance(1)
                continue
            for i in members:
                keys[i] = study.key(cells[i], states[group], run_type)
                stored = cache.load(keys[i])
                if stored is not None:
                    out.records[i].data, out.records[i].cached = stored, True
                    bar.advance(1)
                elif backend == "local" or keys[i] is None:  # no key: a worker could not rebuild this model
                    local.append((i, cells[i]))
                else:
                    remote.append((i, cells[i]))
            bar.note(f"preparing {cells[members[0]].title()}")
            out.groups[group] = study.finish_group([cells[i] for i in members], states[group], here,
                                                   _memo(cache))
        local_set = {i for i, _ in local}

        def bar_for(cell: Any) -> _CellBar:
            bar.note(cell.title())
            current[0] = _CellBar(bar)
            return current[0]

        current: list[_CellBar | None] = [None]

        def report_local(index: int, data: dict[str, Any] | None, error: str | None) -> None:
            report(index, data, error)
            if current[0] is not None:
                current[0].finish()
                current[0] = None
            else:
                bar.advance(1)

        if remote and backend == "ray":
            run_ray(study, remote, {g: s for g, s in states.items() if any(c.group == g for _, c in remote)},
                    run_type, report, gpus_per_cell)
        elif remote:
            run_processes(study, remote, here, jobs, report)
        if local:
            run_local(study, local, states, here, report_local, bar_for)
    for record in out.failed:
        log(f"warning: cell failed: {record.cell.title()}: {record.error}")
    return out


def cell_progress(title: str, error: str | None, out: StudyOutput, started: float) -> tuple[str, bool]:
    """(``cell 12/40 done: <title>, eta 3 min 10 s``, whether it was the last cell): the ETA from the pace of the
    cells computed so far (cached ones cost nothing and are left out of the pace)."""
    done = sum(r.data is not None or r.error is not None for r in out.records)
    left = len(out.records) - done
    computed = max(out.computed + len(out.failed), 1)
    eta = f", eta {format_duration((time.monotonic() - started) / computed * left)}" if left else ""
    return f"cell {done}/{len(out.records)} {'failed' if error else 'done'}: {title}{eta}", left == 0


def _memo(cache: CellCache):  # noqa: ANN202 - studies.base.Memo
    def memo(key: str | None, compute):  # noqa: ANN001, ANN202
        stored = cache.load(key)
        if stored is not None:
            return stored
        value = compute()
        cache.store(key, value)
        return value

    return memo


@dataclass
class RunResult:
    """A written run: its folder, tables (by file name), checks and run.json content."""

    run_dir: Path
    tables: dict[str, pd.DataFrame]
    checks: list[Check]
    run_info: dict[str, Any]
    output: StudyOutput

    @property
    def report(self) -> Path:
        return self.run_dir / "report.html"

    @property
    def results(self) -> pd.DataFrame:
        return self.tables["results.csv"]

    @property
    def per_class(self) -> pd.DataFrame:
        return self.tables["per_class.csv"]

    @property
    def failed(self) -> int:
        return len(self.output.failed)


def run(study: Study, *, out: str | Path = "reports", device: str = "auto", backend: str = "local", jobs: int = 1,
        use_cache: bool = True, ray_address: str | None = None, gpus_per_cell: float | None = None) -> RunResult:
    """Execute ``study`` and write ``<out>/<run-id>/``: its tables as CSV, run.json and report.html. The report
    and run.json list failed cells with their errors; :attr:`RunResult.failed` counts them."""
    from trustkit.report import renderer
    from trustkit.report.export import exports
    from trustkit.rundir import write_run_folder

    started = time.perf_counter()
    output = execute(study, device=device, backend=backend, jobs=jobs, cache=CellCache(enabled=use_cache),
                     ray_address=ray_address, gpus_per_cell=gpus_per_cell, description=study.description())
    tables = study.frames(output)
    checks = study.checks(tables, output)
    label, title, subtitle = study.headline(output)
    config = {**study.settings(), "backend": backend, "jobs": jobs}
    failures = [{"cell": r.cell.title(), "error": r.error} for r in output.failed]
    extra = {"cells": {"total": len(output.records), "computed": output.computed,
                       "from_cache": sum(r.cached for r in output.records), "failed": len(failures)},
             "failures": failures, **study.run_extras(output)}
    render = renderer(study.kind)
    run_dir, info = write_run_folder(
        out, label, kind=study.kind, title=title, subtitle=subtitle, config=config, device=select_device(
            "cpu" if backend == "ray" else device), checks=checks, tables=tables,
        timings={"total": time.perf_counter() - started}, files=exports(study.kind, tables),
        render_html=lambda info: render(info=info, output=output, tables=tables, checks=checks), **extra)
    return RunResult(run_dir, tables, checks + study.group_checks(output), info, output)
