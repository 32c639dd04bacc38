"""FGSM-RS ("fast is better than free", Wong et al. 2020) on MNIST: train, then evaluate honestly.

    python benchmarks/fast_at_mnist.py --data-root ../shared/data

Trains a zoo model (default `cnn-small`, the paper's own network: conv16-conv32 stride 2, fc100, 166,406
parameters; `--model cnn` for the 421,642-parameter max-pool convnet) with FGSM from a random start, eps 0.3,
alpha 0.375 (1.25·eps), Adam with a cyclic learning rate peaking at 5e-3 (cnn-small: the paper's triangle), batch
100 (cnn: 128), 10 epochs, keeping the epoch with the best PGD accuracy on 512 held-out training images. Then evaluates on the first --n test images: clean, PGD-50 with 10 restarts
(the paper's evaluation: 98.5% clean, 88.77% PGD), APGD-CE and the strong ensemble (APGD-CE + APGD-T).
The goal: >= 89% PGD-50×10 in <= 10 minutes of training on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

from trustkit import load_dataset  # noqa: E402
from trustkit.attacks import make_attack  # noqa: E402
from trustkit.bench.evaluate import clean_predictions, run_attack, wilson_interval  # noqa: E402
from trustkit.train import train_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--model", default="cnn-small", help="zoo model to train (default: cnn-small)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--n", type=int, default=1000, help="test images evaluated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    started = time.perf_counter()
    result = train_model(args.model, "mnist", recipe="fgsm-rs", eps=args.eps, epochs=args.epochs, seed=args.seed,
                         device=args.device, data_root=args.data_root)
    train_seconds = time.perf_counter() - started
    model = result.model
    device = next(model.parameters()).device
    x, y = load_dataset("mnist", "test", args.data_root).tensors(torch.arange(args.n))
    clean = clean_predictions(model, x, batch_size=500, device=device)
    print(f"# FGSM-RS {args.model} on MNIST, eps {args.eps}, {args.epochs} epochs; {machine()}")
    print(f"training: {train_seconds:.0f} s ({train_seconds / args.epochs:.1f} s/epoch), kept epoch "
          f"{result.history.best_epoch}, catastrophic overfitting: {result.history.collapsed_at or 'none'}"
          f"{', never robust' if result.history.never_robust else ''}")
    print(f"checkpoint: {result.path}")
    print(f"clean accuracy: {(clean.label == y).float().mean():.2%} on {args.n} test images")
    for name, params in (("pgd", {"steps": 50, "restarts": 10, "alpha": 0.01}), ("apgd-ce", {}), ("strong", {})):
        torch.manual_seed(args.seed)
        attack = make_attack(name, args.eps, **params)
        t0 = time.perf_counter()
        outcome = run_attack(model, attack, x, y, clean, batch_size=500, device=device)
        robust = ((outcome.adversarial.label == y) & (clean.label == y)).sum().item()
        low, high = wilson_interval(robust, args.n)
        label = "PGD-50×10" if name == "pgd" else name
        print(f"{label:10s} robust accuracy {robust / args.n:.2%} (95% CI {low:.1%}-{high:.1%}), "
              f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
