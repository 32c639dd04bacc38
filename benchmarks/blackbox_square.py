"""Square attack success against queries on MNIST (score-based black-box), beside white-box PGD.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/blackbox_square.py --data-root ../shared/data --threads 1

Runs the same cells as ``trustkit bench square,pgd --model cnn --dataset mnist --eps 0.3 -p n_queries=5000
--n 200`` (same seeded images, same report under --out) and prints, per (attack, eps), the success rate within
budgets of 10 ... 5000 queries per image (one run: an image fooled at its k-th query counts for every budget
from k on), the median and mean queries, and wall seconds; then the sanity checks.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, markdown_table  # noqa: E402

from trustkit.attacks import format_eps  # noqa: E402
from trustkit.engine import BenchConfig, run  # noqa: E402
from trustkit.studies.bench import bench_study  # noqa: E402
from trustkit.report.blackbox_plots import success_at  # noqa: E402
from trustkit.runtime import set_quiet  # noqa: E402

BUDGETS = (10, 30, 100, 300, 1000, 3000, 5000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--dataset", default="mnist", help="digits gives a quick check of the script itself")
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--attacks", default="square,pgd")
    parser.add_argument("--eps", default="0.3")
    parser.add_argument("--norm", default="linf")
    parser.add_argument("--queries", type=int, default=5000, help="Square's budget per image")
    parser.add_argument("--p-init", type=float, help="Square's initial square size (default: trustkit's)")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--out", default="reports")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    set_quiet(True)
    print(f"# {machine()}; load average before {os.getloadavg()[0]:.2f}", flush=True)
    params = {"n_queries": args.queries, **({"p_init": args.p_init} if args.p_init else {})}
    config = BenchConfig(attacks=args.attacks.split(","), model=args.model, dataset=args.dataset,
                         eps=args.eps.split(","), norm=args.norm, n=args.n, device="cpu", data_root=args.data_root,
                         out=args.out, probes=False, use_cache=False, strict_params=params)
    wall, cpu = time.perf_counter(), time.process_time()
    study = bench_study(config)  # what run_bench does, keeping the rows' query curves (results.csv drops them)
    study.label, study.title = f"square-benchmark-{args.model}-{args.dataset}", f"Square on {args.model} ({args.dataset})"
    study.subtitle = "benchmarks/blackbox_square.py"
    result = run(study, out=args.out, device="cpu", use_cache=False)
    output = result.output
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"\n# {machine()}; load average after {os.getloadavg()[0]:.2f}; run {wall:.0f} s wall, {cpu:.0f} s CPU; "
          f"report {result.report}\n")
    rows = []
    for record in output.finished:
        row = record.data["row"]
        curve = row.get("query_curve")
        within = [f"{success_at(curve, b):.1%}" if curve else "–" for b in BUDGETS]
        mean = curve["total_queries"] / curve["attacked"] if curve and curve["attacked"] else math.nan
        rows.append([row["attack"], row["norm"], format_eps(row["eps"]), f"{row['clean_accuracy']:.1%}",
                     f"{row['success_rate']:.1%}", *within,
                     "–" if math.isnan(row["queries"]) else f"{row['queries']:.0f}",
                     "–" if math.isnan(mean) else f"{mean:.0f}", f"{row['seconds']:.1f}"])
    print(markdown_table(["attack", "norm", "eps", "clean", "success", *[f"≤{b} q" for b in BUDGETS],
                          "median q (successful)", "mean q", "seconds"], rows))
    print()
    for check in result.checks:
        print(f"sanity: {check.name}: {check.status} — {check.detail}")


if __name__ == "__main__":
    main()
