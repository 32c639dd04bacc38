"""Randomized smoothing on MNIST against the published anchor (Cohen et al. 2019's Gaussian training, LeNet, N =
100,000, from Jeong & Shin 2020's logs), over several seeds.

    python benchmarks/certify_mnist.py --data-root ../shared/data                        # the real run (hours)
    python benchmarks/certify_mnist.py --data-root ../shared/data --seeds 0 --sigmas 0.25 --n-images 20 \\
        --n 1000 --epochs 1 --attack-n 4                                                 # a smoke test (~2 min)

For every σ of --sigmas and seed of --seeds: trains the zoo `cnn` with Gaussian noise σ (`trustkit train --noise σ`
with its defaults, --epochs to override) into its own store entry `cnn-mnist-gaussian-sigmaσ-seedS` of the current
store (skipped when it is there already), certifies the first --n-images of a seeded test sample with N0 = 100,
--n samples and α = 0.001 through the certify study (cached and resumable like `trustkit certify`), and runs its
consistency check. Prints, and writes to --out (markdown), the median and range over seeds of certified accuracy
at the anchor's radii beside the published figures, which of those radii --n can reach at all
(σ·Φ⁻¹(α^(1/N))), the consistency-check violations, and the seconds spent.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, markdown_table  # noqa: E402

from trustkit.certify import max_certifiable_radius  # noqa: E402
from trustkit.engine import run  # noqa: E402
from trustkit.models.store import checkpoint_exists, store_path  # noqa: E402
from trustkit.studies.certify import CertifyConfig, certify_study  # noqa: E402
from trustkit.studies.certify_results import ANCHOR, ANCHOR_SOURCE, certified_accuracy  # noqa: E402
from trustkit.train import store_name, train_model  # noqa: E402

ALPHA = 0.001


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--sigmas", default="0.25,0.5,1.0")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--n-images", type=int, default=500)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the recipe's, 10)")
    parser.add_argument("--attack-n", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="reports/certify_mnist.md")
    args = parser.parse_args()
    sigmas = [float(s) for s in args.sigmas.split(",") if s.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]

    found: dict[float, dict[float, list[float]]] = {s: {} for s in sigmas}
    acr: dict[float, list[float]] = {s: [] for s in sigmas}
    violations, train_seconds, certify_seconds = 0, 0.0, 0.0
    for sigma in sigmas:
        for seed in seeds:
            name = f"{store_name('cnn', 'mnist', 'gaussian', sigma=sigma)}-seed{seed}"
            if not checkpoint_exists(store_path(name)):
                tic = time.perf_counter()
                train_model("cnn", "mnist", recipe="gaussian", sigma=sigma, seed=seed, epochs=args.epochs,
                            device=args.device, data_root=args.data_root, out=store_path(name))
                train_seconds += time.perf_counter() - tic
            tic = time.perf_counter()
            config = CertifyConfig(models=(name,), dataset="mnist", sigmas=(sigma,), n0=args.n0, n=args.n,
                                   alpha=ALPHA, n_images=args.n_images, attack_n=args.attack_n, seed=seed,
                                   batch_size=args.batch_size, device=args.device, data_root=args.data_root,
                                   out="reports")
            result = run(certify_study(config), out="reports", device=args.device)
            certify_seconds += time.perf_counter() - tic
            certificates = result.tables["certificates.csv"]
            for radius in ANCHOR.get(sigma, {0.0: None}):
                found[sigma].setdefault(radius, []).append(certified_accuracy(certificates, radius))
            acr[sigma].append(float(result.results["acr"].iloc[0]))
            attack = result.tables["attack.csv"]
            violations += int(attack.loc[attack["inside"].astype(bool), "violations"].sum())
            print(f"σ {sigma:g} seed {seed}: {result.report}", flush=True)

    rows = []
    for sigma in sigmas:
        limit = max_certifiable_radius(sigma, args.n, ALPHA)
        for radius, values in found[sigma].items():
            published = ANCHOR.get(sigma, {}).get(radius)
            med = statistics.median(values)
            rows.append([f"{sigma:g}", f"{radius:g}", "–" if published is None else f"{published:.1%}",
                         f"{med:.1%}", f"{min(values):.1%}–{max(values):.1%}",
                         "–" if published is None else f"{(med - published) * 100:+.1f}",
                         "yes" if radius <= limit else f"no (limit {limit:.2f})",
                         f"{statistics.median(acr[sigma]):.3f}"])
    table = markdown_table(["σ", "radius", "published", "ours (median)", "range over seeds", "difference (points)",
                            f"reachable with N={args.n:,}", "ACR (median)"], rows)
    reach = ", ".join(f"σ {s:g}: r ≤ {max_certifiable_radius(s, args.n, ALPHA):.2f}" for s in sigmas)
    text = (f"# Randomized smoothing on MNIST\n\nAnchor: {ANCHOR_SOURCE}.\n\n"
            f"Ours: zoo cnn, Gaussian training ({args.epochs or 'default'} epochs), seeds {args.seeds}, first "
            f"{args.n_images} images of a seeded test sample, N0 = {args.n0}, N = {args.n:,}, α = {ALPHA}; "
            f"N can certify {reach}.\n\n{table}\n\n"
            f"Consistency check (PGD + EOT inside the certified radius): {violations} violation(s).\n\n"
            f"Training {train_seconds:.0f} s, certification {certify_seconds:.0f} s on {machine()}.\n")
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
