"""Transfer matrix over the zoo on MNIST: craft FGSM / PGD on each model (and an ensemble), judge on each.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/blackbox_transfer.py --data-root ../shared/data --threads 1

Runs ``trustkit bench transfer`` (``trustkit.engine.run_transfer``) with the zoo ``softmax``,
``mlp`` and ``cnn`` (trained and cached first if missing) as sources and targets, plus the ``mlp+cnn`` logit
ensemble as a source, on --n seeded MNIST test images: FGSM and PGD-10 (last iterate, no early stopping) at
each eps. Prints one markdown matrix per (attack, eps) — cells are the success rate on the target (share of
its correctly classified images that it misclassifies), the last row each target attacked white-box — and
the wall and CPU seconds of the run.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, markdown_table  # noqa: E402

from trustkit.attacks import format_eps  # noqa: E402
from trustkit.blackbox.transfer import TransferConfig  # noqa: E402
from trustkit.engine import run_transfer  # noqa: E402
from trustkit.models.loading import resolve_model  # noqa: E402
from trustkit.runtime import set_quiet  # noqa: E402
from trustkit.train.zoo import ensure_trained  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--dataset", default="mnist", help="digits gives a quick check of the script itself")
    parser.add_argument("--models", default="softmax,mlp,cnn")
    parser.add_argument("--ensemble", default="mlp+cnn", help="an extra source ('' for none)")
    parser.add_argument("--attacks", default="fgsm,pgd")
    parser.add_argument("--eps", default="0.1,0.2,0.3")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--out", default="reports")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    set_quiet(True)
    print(f"# {machine()}; load average before {os.getloadavg()[0]:.2f}", flush=True)
    models = args.models.split(",")
    started = time.perf_counter()
    for name in models:  # train (and cache) first, so that the timing below is the attack only
        tic = time.perf_counter()
        ensure_trained(name, args.dataset, device="cpu", data_root=args.data_root)
        loaded = resolve_model(name, args.dataset, data_root=args.data_root, device="cpu")
        print(f"{name}: ready in {time.perf_counter() - tic:.1f} s "
              f"(test accuracy at training {loaded.metadata.get('metrics', {}).get('clean_accuracy')})", flush=True)
    wall, cpu = time.perf_counter(), time.process_time()
    result = run_transfer(TransferConfig(sources=models + ([args.ensemble] if args.ensemble else []), targets=models,
                                         dataset=args.dataset, attacks=args.attacks.split(","),
                                         eps=args.eps.split(","), n=args.n, device="cpu", data_root=args.data_root,
                                         out=args.out))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    frame = result.results
    print(f"\n# {machine()}; load average after {os.getloadavg()[0]:.2f}; transfer run {wall:.0f} s wall, "
          f"{cpu:.0f} s CPU; total with training {time.perf_counter() - started:.0f} s; report {result.report}\n")
    clean = frame.drop_duplicates("target").set_index("target")["target_clean_accuracy"]
    print("clean accuracy on the images: " + ", ".join(f"{k} {v:.1%}" for k, v in clean.items()) + "\n")
    for (attack, norm, eps), group in frame.groupby(["attack", "norm", "eps"], sort=False):
        matrix = result.matrix(attack, eps, norm)
        seconds = group.drop_duplicates("source").set_index("source")["craft_seconds"]
        rows = [[f"**{index}**" if index.startswith("white-box") else index,
                 *[f"{v:.1%}" for v in row.values],
                 f"{seconds[index]:.1f}" if index in seconds.index else "–"]
                for index, row in matrix.iterrows()]
        print(f"**{attack} ({norm}), eps {format_eps(eps)}** — success on the target (columns) of images crafted on "
              "the row's model\n")
        print(markdown_table(["crafted on \\ target", *matrix.columns, "craft s"], rows))
        print()
    for check in result.checks:
        print(f"sanity: {check.name}: {check.status} — {check.detail}")


if __name__ == "__main__":
    main()
