"""Where cells run: this process (``local``), a pool of processes (``processes``), or Ray tasks (``ray``).

Every backend takes the same list of ``(index, cell)`` tasks and reports each one back exactly once, as its
result dict or its one-line error, through ``report(index, data, error)``. Cells reseed themselves, so the
backend changes how fast a study runs, never its numbers.

* ``local`` runs cells one after another with the group state the driver prepared.
* ``processes`` spawns ``jobs`` workers (each with cores / jobs torch threads); a worker prepares a group the
  first time it meets one (re-reading the model store and the data), then keeps it.
* ``ray`` ships each group's state once through Ray's object store (:func:`ray.put`) and runs one Ray task per
  cell (``num_cpus=1``; ``num_gpus`` a fraction when the cluster has GPUs, so small cells share one). A worker
  that dies mid-cell is retried by Ray (``max_retries``); the driver keeps the first result of each cell, so
  nothing is lost or counted twice.

Cells that build on each other (the study's ``affinity``: an ε-curve whose larger budgets attack only what the
smaller ones left standing) travel as one task, a *chain*, run in cell order in one process: split across
processes, each cell would first recompute the smaller budgets it builds on, and a curve of k budgets would cost
about k(k+1)/2 cells' work instead of k. A chain reports its cells when it ends; a failing cell in it is reported
with its error and the chain goes on.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Hashable, Sequence

import torch

from trustkit.errors import InvalidArgumentError
from trustkit.studies.base import Progress, Study, affinity_of, one_line

BACKENDS = ("local", "processes", "ray")
RAY_TASK_RETRIES = 3  # a worker killed mid-cell (preempted node, OOM) is retried this many times
DEFAULT_GPUS_PER_CELL = 0.25  # Ray: four small cells share one GPU

Report = Callable[[int, "dict[str, Any] | None", "str | None"], None]


def check_backend(backend: str, ray_address: str | None) -> None:
    """One-line errors for an unknown backend, an address without Ray, or Ray not installed."""
    if backend not in BACKENDS:
        raise InvalidArgumentError(f"unknown backend '{backend}'; use one of: {', '.join(BACKENDS)}")
    if ray_address and backend != "ray":
        raise InvalidArgumentError("--ray-address needs --backend ray")
    if backend == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise InvalidArgumentError("--backend ray needs Ray; install it with pip install 'trustkit[ray]'")


Chain = list[tuple[int, Any]]


def chains(study: Study, tasks: Sequence[tuple[int, Any]]) -> list[Chain]:
    """``tasks`` grouped into chains: cells of one non-None ``study.affinity`` together (in task order, each
    chain where its first cell stood), every other cell alone."""
    grouped: dict[Hashable, Chain] = {}
    out: list[Chain] = []
    for index, cell in tasks:
        key = affinity_of(study, cell)
        if key is None:
            out.append([(index, cell)])
        elif key in grouped:
            grouped[key].append((index, cell))
        else:
            grouped[key] = [(index, cell)]
            out.append(grouped[key])
    return out


def _run_chain(study: Study, cells: Sequence[Any], state: Any, device: torch.device) -> list[tuple[Any, str | None]]:
    """``(result, None)`` or ``(None, one-line error)`` per cell, run one after another on one state."""
    results: list[tuple[Any, str | None]] = []
    for cell in cells:
        try:
            results.append((study.run(cell, state, device, None), None))
        except Exception as exc:  # a failing cell is reported; the rest of the chain still runs
            results.append((None, one_line(exc)))
    return results


def run_local(study: Study, tasks: Sequence[tuple[int, Any]], states: dict[Hashable, Any], device: torch.device,
              report: Report, bar_for: Callable[[Any], Progress | None]) -> None:
    """Run every task in this process, one after another."""
    for index, cell in tasks:
        try:
            data = study.run(cell, states[cell.group], device, bar_for(cell))
        except Exception as exc:  # a failing cell is reported; the others still run
            report(index, None, one_line(exc))
        else:
            report(index, data, None)


# --- processes --------------------------------------------------------------------------------------------
_WORKER_STATES: dict[Hashable, Any] = {}


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)
    from trustkit.runtime import set_quiet

    set_quiet(True)


def _worker_run(study: Study, cells: Sequence[Any], device: str) -> list[tuple[Any, str | None]]:
    from trustkit.runtime import select_device

    torch_device = select_device(device)
    group = cells[0].group  # a chain never leaves its group: affinity keys include it
    if group not in _WORKER_STATES:
        _WORKER_STATES[group] = study.prepare([cells[0]], torch_device)
    return _run_chain(study, cells, _WORKER_STATES[group], torch_device)


def run_processes(study: Study, tasks: Sequence[tuple[int, Any]], device: torch.device, jobs: int,
                  report: Report) -> None:
    """Run the tasks, chain by chain, in ``jobs`` spawned processes."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_init, initargs=(threads,)) as pool:
        futures = {pool.submit(_worker_run, study, [cell for _, cell in chain], str(device)): chain
                   for chain in chains(study, tasks)}
        for future in as_completed(futures):
            _report_chain(futures[future], future.result, report)


def _report_chain(chain: Chain, result: Callable[[], list[tuple[Any, str | None]]], report: Report) -> None:
    """Report each cell of a finished chain; when the whole task failed (a dead worker), each cell gets its
    error."""
    try:
        outcomes = result()
    except Exception as exc:  # RayTaskError wraps the task's own exception as .cause
        error = one_line(getattr(exc, "cause", None) or exc)
        outcomes = [(None, error)] * len(chain)
    for (index, _), (data, error) in zip(chain, outcomes):
        report(index, data, error)


# --- ray --------------------------------------------------------------------------------------------------
def _ray_chain(study: Study, state: Any, cells: Sequence[Any], device: str) -> list[tuple[Any, str | None]]:
    from trustkit.runtime import select_device, set_quiet

    set_quiet(True)
    torch_device = select_device(device)
    return _run_chain(study, cells, study.localize(state, torch_device), torch_device)


def start_ray(address: str | None, jobs: int) -> bool:
    """Connect to ``address`` (``auto`` or ``HOST:PORT``) or start a local Ray with ``jobs`` CPUs; True when
    this call started it (and so should shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=jobs, **kwargs)
    return True


def ray_device(device: str) -> str:
    """The device type Ray tasks run on: ``cuda`` when the cluster has GPUs and ``device`` allows them."""
    import ray

    if device in ("auto", "cuda") and ray.cluster_resources().get("GPU", 0) > 0:
        return "cuda"
    if device == "cuda":
        raise InvalidArgumentError("--device cuda, but the Ray cluster has no GPU; use --device auto or cpu")
    return "cpu"


def run_ray(study: Study, tasks: Sequence[tuple[int, Any]], states: dict[Hashable, Any], device_type: str,
            report: Report, gpus_per_cell: float | None = None) -> None:
    """Run one Ray task per chain (a lone cell, or a curve's cells); group states travel once through the
    object store."""
    import ray

    gpus = 0.0 if device_type != "cuda" else (DEFAULT_GPUS_PER_CELL if gpus_per_cell is None else gpus_per_cell)
    remote = ray.remote(_ray_chain).options(num_cpus=1, num_gpus=gpus, max_retries=RAY_TASK_RETRIES)
    refs = {group: ray.put(study.portable(state)) for group, state in states.items()}
    futures = {remote.remote(study, refs[chain[0][1].group], [cell for _, cell in chain], device_type): chain
               for chain in chains(study, tasks)}
    while futures:
        done, _ = ray.wait(list(futures), num_returns=1)
        _report_chain(futures.pop(done[0]), lambda: ray.get(done[0]), report)
