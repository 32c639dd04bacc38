"""Evasion of the CNN fake detector: the old PGD-10 beside the strongest trustkit has, per ε, and how far the fakes
sit from the detector's "real" side.

    OMP_WAIT_POLICY=PASSIVE TRUSTKIT_HOME=$(mktemp -d) \
        python benchmarks/detector_evasion.py --dataset faces --data-root ../shared/data --generators dcgan \
        --gen-epochs 8 --n-test 500 --json out.json

Trains the --generators first when missing (``trustkit gen train`` with --gen-epochs), builds the real/fake set,
trains the CNN detector per generator (its store entry), then per ε of 1, 2, 4, 8/255 runs
:func:`trustkit.detection.evasion.evade_strongest` (APGD-margin, APGD-CE with --steps, PGD-10; each re-quantised
to 8 bits; the per-image strongest) and prints AUC, AP and accuracy at the calibrated threshold, beside the
independent reference: torchattacks' APGD-CE with the same steps and its highest-loss point, compared with
trustkit's APGD-CE before quantisation (both float). Then the ℓ∞
budget each fake needs to cross the threshold (:func:`flip_budgets`) and the distance of the fakes to the real
images: the detector's clean margin and the mean ℓ∞ / ℓ2 distance of each fake to its nearest real test image.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, markdown_table  # noqa: E402

from trustkit.detection.data import build_fake_set  # noqa: E402
from trustkit.detection.evaluate import score_quality  # noqa: E402
from trustkit.detection.evasion import VARIANTS, evade_strongest, flip_budgets  # noqa: E402
from trustkit.detection.run import train_detector  # noqa: E402
from trustkit.generative.store import store_name  # noqa: E402
from trustkit.models.store import checkpoint_exists, store_path  # noqa: E402
from trustkit.runtime import set_quiet  # noqa: E402

EPS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)


def torchattacks_apgd_ce(module: torch.nn.Module, fakes: torch.Tensor, eps: float, steps: int) -> np.ndarray:
    """P(fake) after torchattacks' APGD-CE on the label "fake" (every step spent: its highest-loss point)."""
    import torchattacks

    from trustkit.detection.base import FAKE

    attack = torchattacks.APGD(module, norm="Linf", eps=eps, steps=steps, n_restarts=1, loss="ce", seed=0)
    scores = []
    for start in range(0, len(fakes), 256):
        x = fakes[start:start + 256].float() / 255
        _, x_adv = attack.perturb(x, torch.full((len(x),), FAKE), best_loss=True)
        with torch.no_grad():
            scores.append(module(x_adv).float().softmax(1)[:, FAKE].double())
    return torch.cat(scores).numpy()


def ensure_generator(name: str, dataset: str, epochs: int, data_root: str | None) -> None:
    if checkpoint_exists(store_path(store_name(name, dataset))):
        return
    command = [sys.executable, "-m", "trustkit", "gen", "train", "--model", name, "--dataset", dataset, "--epochs",
               str(epochs)]
    command += ["--data-root", data_root] if data_root else []
    tic = time.perf_counter()
    subprocess.run(command + ["--out", "/tmp/evasion-gen-reports"], check=True, stdout=subprocess.DEVNULL)
    print(f"trained {name} on {dataset}: {epochs} epochs, {time.perf_counter() - tic:.0f} s", flush=True)


def nearest_real(fakes: torch.Tensor, real: torch.Tensor) -> tuple[float, float]:
    """Mean over fakes of the ℓ∞ and ℓ2 distance (pixel scale [0, 1]) to the nearest real image (by ℓ2)."""
    f, r = fakes.float().flatten(1) / 255, real.float().flatten(1) / 255
    nearest = torch.cdist(f, r).argmin(1)
    delta = f - r[nearest]
    return float(delta.abs().max(1).values.mean()), float(delta.norm(dim=1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-root")
    parser.add_argument("--generators", default="dcgan")
    parser.add_argument("--gen-epochs", type=int, default=8)
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-val", type=int, default=500)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="seed of the subsets, the fakes and the detector")
    parser.add_argument("--json")
    args = parser.parse_args()
    set_quiet(True)
    device = torch.device("cpu")
    print(f"machine: {machine()}", flush=True)
    generators = args.generators.split(",")
    for name in generators:
        ensure_generator(name, args.dataset, args.gen_epochs, args.data_root)
    tic = time.perf_counter()
    images = build_fake_set(args.dataset, generators, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test,
                            seed=args.seed, data_root=args.data_root)
    print(f"fake set {time.perf_counter() - tic:.0f} s", flush=True)
    report: dict = {"machine": machine(), "args": vars(args), "generators": {}}
    for generator in generators:
        tic = time.perf_counter()
        trained = train_detector("cnn", images, generator, seed=args.seed, device=device)
        print(f"\n## cnn detector on {args.dataset} / {generator}: trained in {time.perf_counter() - tic:.0f} s, "
              f"threshold {trained.threshold:.4f}", flush=True)
        x, y = images.pair("test", generator)
        labels = y.numpy()
        real, fakes = x[y == 0], x[y == 1]
        real_scores = trained.detector.score(real)
        clean = score_quality(np.concatenate([real_scores, trained.detector.score(fakes)]), labels, trained.threshold)
        rows, entry = [["0", "clean", f"{clean.auc:.4f}", f"{clean.ap:.4f}", f"{clean.accuracy:.1%}", "–"]], []
        for eps in EPS:
            tic = time.perf_counter()
            done = evade_strongest(trained.detector, fakes, eps, steps=args.steps, device=device)
            seconds = time.perf_counter() - tic
            for variant in (*VARIANTS, "strongest"):
                quality = score_quality(np.concatenate([real_scores, done.p_fake[variant]]), labels, trained.threshold)
                rows.append([f"{eps * 255:g}/255", variant, f"{quality.auc:.4f}", f"{quality.ap:.4f}",
                             f"{quality.accuracy:.1%}", f"{seconds:.0f}"])
                entry.append({"eps": eps, "variant": variant, **quality.as_dict(), "seconds": seconds})
            floating = score_quality(np.concatenate([real_scores, done.p_fake_float["strongest"]]), labels,
                                     trained.threshold)
            rows.append([f"{eps * 255:g}/255", "strongest (float)", f"{floating.auc:.4f}", f"{floating.ap:.4f}",
                         f"{floating.accuracy:.1%}", ""])
            ours = score_quality(np.concatenate([real_scores, done.p_fake_float["apgd-ce"]]), labels,
                                 trained.threshold)
            tic = time.perf_counter()
            reference = torchattacks_apgd_ce(trained.detector.module.eval(), fakes, eps, args.steps)
            ref_seconds = time.perf_counter() - tic
            theirs = score_quality(np.concatenate([real_scores, reference]), labels, trained.threshold)
            for name, quality, took in (("apgd-ce (float)", ours, ""),
                                        ("torchattacks APGD-CE (float)", theirs, f"{ref_seconds:.0f}")):
                rows.append([f"{eps * 255:g}/255", name, f"{quality.auc:.4f}", f"{quality.ap:.4f}",
                             f"{quality.accuracy:.1%}", took])
                entry.append({"eps": eps, "variant": name, **quality.as_dict()})
            print(f"eps {eps * 255:g}/255 done in {seconds:.0f} s", flush=True)
        print(markdown_table(["ε", "attack", "AUC", "AP", "accuracy", "seconds"], rows))
        grid = tuple(k / 255 for k in (0.5, 1, 2, 3, 4, 6, 8, 12, 16))
        sample = fakes[:200]
        needed = flip_budgets(trained.detector, sample, trained.threshold, grid, steps=args.steps, device=device)
        finite = needed[np.isfinite(needed)] * 255
        with torch.no_grad():
            logits = trained.detector.module(fakes.float() / 255)
        margin = (logits[:, 1] - logits[:, 0]).numpy()
        linf, l2 = nearest_real(fakes, real)
        summary = {"flip_budget_median_255": float(np.quantile(needed * 255, 0.5, method="inverted_cdf")),
                   "flip_budget_quantiles_255": [float(np.quantile(needed * 255, q, method="inverted_cdf"))
                                                 for q in (0.1, 0.5, 0.9)],
                   "never_flipped_within_16": int((~np.isfinite(needed)).sum()), "flip_sample": len(sample),
                   "clean_margin_median": float(np.median(margin)),
                   "nearest_real_linf": linf, "nearest_real_l2": l2}
        print(f"ℓ∞ budget to cross the threshold ({len(sample)} fakes, APGD-margin {args.steps} steps, 8-bit): "
              f"median {summary['flip_budget_median_255']:g}/255, 10/50/90% {summary['flip_budget_quantiles_255']}, "
              f"{summary['never_flipped_within_16']} not within 16/255; flipped {len(finite)}")
        print(f"clean logit margin (fake − real) median {summary['clean_margin_median']:.2f}; nearest real test image: "
              f"ℓ∞ {linf:.3f}, ℓ2 {l2:.2f} (mean over fakes)", flush=True)
        report["generators"][generator] = {"rows": entry, "clean": clean.as_dict(), **summary}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
