"""Reduced-precision attack iterations against float32, in one run: robust accuracy (judged in fp32) and time.

    python benchmarks/attack_precision.py --dataset mnist --model cnn --data-root ../shared/data --n 1000
    python benchmarks/attack_precision.py --dataset cifar10 --model resnet --eps 2/255,8/255 --device cuda

Each (attack, eps) runs fp32 and bf16 (and fp16 with --fp16) on the same seeded images, alternating, every cell
recomputed (no cache); the zoo model is trained first if the store has none. Prints one Markdown table.
"""
from __future__ import annotations

import argparse
import tempfile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--attacks", default="pgd,apgd-ce")
    parser.add_argument("--eps", default="0.1,0.3")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--fp16", action="store_true", help="also time fp16")
    args = parser.parse_args()

    from trustkit.engine import BenchConfig, run_bench
    from trustkit.train.zoo import ensure_trained

    ensure_trained(args.model, args.dataset, device=args.device, data_root=args.data_root)
    precisions = ["fp32", "bf16"] + (["fp16"] if args.fp16 else [])
    found: dict[tuple[str, str, float], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as out:
        for precision in precisions:
            result = run_bench(BenchConfig(model=args.model, dataset=args.dataset, attacks=args.attacks.split(","),
                                           eps=args.eps.split(","), n=args.n, batch_size=args.batch_size,
                                           device=args.device, data_root=args.data_root, precision=precision,
                                           use_cache=False, probes=False, out=out))
            for _, row in result.results.iterrows():
                found.setdefault((row["attack"], row["norm"], row["eps"]), {})[precision] = row
    header = " | ".join(f"{p} robust | {p} s" for p in precisions)
    print(f"| attack | eps | {header} | speed-up bf16 |")
    print("|---|---|" + "---|---|" * len(precisions) + "---|")
    for (attack, norm, eps), rows in found.items():
        cells = " | ".join(f"{rows[p]['robust_accuracy']:.1%} | {rows[p]['seconds']:.1f}" for p in precisions)
        print(f"| {attack} {norm} | {eps:g} | {cells} | {rows['fp32']['seconds'] / rows['bf16']['seconds']:.2f}× |")


if __name__ == "__main__":
    main()
