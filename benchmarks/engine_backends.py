"""The study engine's cost and its backends, in one run on this machine.

1. Engine overhead per cell: a bench study of PGD-10 cells on digits run through ``trustkit.engine.execute``
   (serial, cache off); overhead = (wall time − time spent inside the cells' own computation) / cells, set
   against the median PGD-10 cell; measured twice in one process, since the first study also pays the
   one-time costs of the process (its warm run is the cost per cell).
2. The same digits suite (>= 16 cells) serial, ``--backend processes`` and ``--backend ray`` with 2 workers,
   cache off, with the wall time of each and its speed-up over serial; the numbers must agree exactly.
   The serial run is also timed with one torch thread: each worker of ``processes`` and ``ray`` runs one thread
   (cores / workers), so ``workers × (serial speed at one thread)`` bounds what the backends can reach, and the
   ratio of that bound to serial says whether the machine leaves them anything to gain.

    python benchmarks/engine_backends.py [--cells 16] [--n 360] [--jobs 2]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, markdown_table  # noqa: E402
import torch  # noqa: E402

from trustkit.engine import BenchConfig, CellCache, execute  # noqa: E402
from trustkit.runtime import set_quiet  # noqa: E402
from trustkit.studies.bench import BenchStudy, bench_study  # noqa: E402
from trustkit.train.zoo import ensure_trained  # noqa: E402


class TimedStudy(BenchStudy):
    """A bench study that adds up the seconds spent inside its cells' own computation."""

    inside: list[float]
    preparing: list[float]

    def prepare(self, cells, device):  # noqa: ANN001, ANN201
        tic = time.perf_counter()
        try:
            return super().prepare(cells, device)
        finally:
            self.preparing.append(time.perf_counter() - tic)

    def run(self, cell, state, device, bar):  # noqa: ANN001, ANN201
        tic = time.perf_counter()
        try:
            return super().run(cell, state, device, bar)
        finally:
            self.inside.append(time.perf_counter() - tic)


def study(cells: int, n: int, jobs: int, steps: int = 10, model: str = "cnn") -> BenchStudy:
    eps = [round(0.01 * (i + 1), 3) for i in range(cells // 2)]
    return bench_study(BenchConfig(attacks=["pgd", "bim"], model=model, eps=eps, n=n, probes=False,
                                   use_cache=False, jobs=jobs, attack_params={"steps": steps}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=16)
    parser.add_argument("--n", type=int, default=360)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=100, help="attack steps of the backend comparison's cells")
    parser.add_argument("--model", default="cnn")
    args = parser.parse_args()
    set_quiet(True)
    print(f"# {machine()}", flush=True)
    ensure_trained("cnn", "digits")

    table = []
    for run in ("first in the process", "again (warm)"):
        # the first study of a process also pays one-time costs (hashing trustkit's sources for the cache keys,
        # first calls into torch): the warm run is the cost per cell, their difference the cost per process
        base = study(args.cells, args.n, 1)
        timed = TimedStudy(**{k: getattr(base, k) for k in base.__dataclass_fields__})
        timed.inside, timed.preparing = [], []
        pgd_only = [c for c in timed.cell_list if c.attack.name == "pgd"]
        timed.cell_list = pgd_only
        tic = time.perf_counter()
        execute(timed, cache=CellCache(enabled=False))
        wall = time.perf_counter() - tic
        overhead = (wall - sum(timed.inside) - sum(timed.preparing)) / len(pgd_only)
        cell = statistics.median(timed.inside)
        table.append([run, len(pgd_only), f"{wall:.2f}", f"{sum(timed.inside):.2f}", f"{sum(timed.preparing):.2f}",
                      f"{overhead:.4f}", f"{cell:.3f}", f"{overhead / cell:.1%}"])
    print(markdown_table(["study", "cells", "wall s", "inside cells s", "resolving the group s",
                          "engine overhead per cell s", "median PGD-10 cell s", "overhead / cell"], table))
    print("(resolving the group — loading the model, the sample, clean predictions — happens once per study and "
          "is the same work without the engine)\n")

    rows, reference = [], None
    ensure_trained(args.model, "digits")
    threads = torch.get_num_threads()
    for label, backend in (("local (serial)", "local"), ("local (serial), 1 torch thread", "local-1"),
                           ("processes", "processes"), ("ray (starts a local Ray)", "ray"),
                           ("ray (joins a running Ray)", "ray-running")):
        torch.set_num_threads(1 if backend == "local-1" else threads)
        backend = backend.replace("-1", "")
        s = study(args.cells, args.n, 1 if backend == "local" else args.jobs, args.steps, args.model)
        if backend == "ray-running":
            import ray

            ray.init(num_cpus=args.jobs, include_dashboard=False, log_to_driver=False, configure_logging=False)
        tic = time.perf_counter()
        output = execute(s, backend=backend.replace("-running", ""), jobs=1 if backend == "local" else args.jobs,
                         cache=CellCache(enabled=False))
        seconds = time.perf_counter() - tic
        if backend == "ray-running":
            ray.shutdown()
        numbers = [r.data["row"]["robust_accuracy"] for r in output.records]
        reference = reference or (numbers, seconds)
        if label.endswith("1 torch thread"):
            one_thread = seconds
        rows.append([label, len(output.records), 1 if backend == "local" else args.jobs, f"{seconds:.1f}",
                     f"{reference[1] / seconds:.2f}×", "yes" if numbers == reference[0] else "NO"])
    print(f"\ncells: PGD and BIM, {args.steps} steps, {args.n} digits test images, {args.model}")
    print(markdown_table(["backend", "cells", "workers", "wall s", "speed-up vs serial", "same numbers"], rows))
    bound = reference[1] / one_thread * args.jobs
    print(f"serial uses {threads} torch threads at {one_thread / reference[1]:.2f}x the speed of one; {args.jobs} "
          f"one-thread workers can reach at most {bound:.2f}x serial on this machine, before any start-up cost")


if __name__ == "__main__":
    main()
