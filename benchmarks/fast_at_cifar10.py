"""Fast adversarial training on CIFAR-10 (Wong et al. 2020): PreAct ResNet-18, eps 8/255, FGSM-RS, 15 epochs.

    python benchmarks/fast_at_cifar10.py --data-root ../shared/data              # full run (a GPU)
    python benchmarks/fast_at_cifar10.py --data-root ../shared/data --cpu-steps 20  # CPU: time 20 steps

The paper reports 46% PGD accuracy (PGD-50, 10 restarts) after 12 minutes on one RTX 2080ti; the goal here
is >= 46% in <= 4 minutes on one H100. Settings follow the paper: alpha 10/255 (1.25·eps), SGD with momentum,
weight decay 5e-4, a cyclic learning rate peaking at 0.2, batch 128, random crops and flips; on CUDA also
bfloat16 autocast and channels-last memory (add --compile for torch.compile). Catastrophic overfitting is
guarded by keeping the epoch with the best PGD accuracy on 512 held-out training images.
On a machine without CUDA, --cpu-steps N times N training steps and extrapolates the time per epoch.
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
from trustkit.attacks.evaluate import clean_predictions, run_attack, wilson_interval  # noqa: E402
from trustkit.data import get_spec  # noqa: E402
from trustkit.models import build_model  # noqa: E402
from trustkit.runtime import prepare_model, select_device  # noqa: E402
from trustkit.train import default_config, train_model  # noqa: E402
from trustkit.train.fit import fit  # noqa: E402

EPS = 8 / 255


def time_cpu_steps(steps: int, data_root: str | None, batch_size: int) -> None:
    """Train ``steps`` FGSM-RS steps on the CPU and extrapolate to an epoch of 50,000 images."""
    spec = get_spec("cifar10")
    device = select_device("cpu")
    train_set = load_dataset("cifar10", "train", data_root)
    subset = train_set.subset(torch.arange(steps * batch_size + steps * batch_size // 9 + 1))
    config = default_config("preact-resnet18", "cifar10", "fgsm-rs").with_overrides(
        eps=EPS, epochs=1, batch_size=batch_size, validation_size=1)
    model = prepare_model(build_model("preact-resnet18", spec), device)
    started = time.perf_counter()
    fit(model, subset, config, device=device, augment=spec.augment)
    seconds = time.perf_counter() - started  # includes the one-image held-out check of the guard
    per_step = seconds / steps
    print(f"# FGSM-RS PreAct ResNet-18 on CIFAR-10, CPU timing; {machine()}")
    print(f"{steps} training steps of {batch_size}: {seconds:.1f} s = {per_step:.2f} s/step -> "
          f"{per_step * 50_000 / batch_size / 60:.0f} min per epoch, "
          f"{per_step * 50_000 / batch_size * 15 / 3600:.1f} h for 15 epochs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--n", type=int, default=1000, help="test images evaluated")
    parser.add_argument("--restarts", type=int, default=10, help="PGD-50 restarts in the evaluation")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--cpu-steps", type=int, default=0, help="CPU only: time this many steps and stop")
    args = parser.parse_args()
    if args.cpu_steps:
        time_cpu_steps(args.cpu_steps, args.data_root, args.batch_size)
        return

    started = time.perf_counter()
    result = train_model("preact-resnet18", "cifar10", recipe="fgsm-rs", eps=EPS, alpha=10 / 255,
                         epochs=args.epochs, batch_size=args.batch_size, data_root=args.data_root,
                         compile=args.compile or None)
    train_seconds = time.perf_counter() - started
    model = result.model
    device = next(model.parameters()).device
    x, y = load_dataset("cifar10", "test", args.data_root).tensors(torch.arange(args.n))
    clean = clean_predictions(model, x, batch_size=500, device=device)
    print(f"# FGSM-RS PreAct ResNet-18 on CIFAR-10, eps 8/255, {args.epochs} epochs; {machine()}")
    print(f"training: {train_seconds:.0f} s, kept epoch {result.history.best_epoch}, catastrophic overfitting: "
          f"{result.history.collapsed_at or 'none'}")
    print(f"clean accuracy {(clean.label == y).float().mean():.2%} on {args.n} test images")
    torch.manual_seed(0)
    attack = make_attack("pgd", EPS, steps=50, restarts=args.restarts, alpha=2 / 255)
    outcome = run_attack(model, attack, x, y, clean, batch_size=500, device=device)
    robust = ((outcome.adversarial.label == y) & (clean.label == y)).sum().item()
    low, high = wilson_interval(robust, args.n)
    print(f"PGD-50×{args.restarts} robust accuracy {robust / args.n:.2%} (95% CI {low:.1%}-{high:.1%})")


if __name__ == "__main__":
    main()
