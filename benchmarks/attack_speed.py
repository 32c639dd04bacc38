"""Attack throughput: trustkit vs ART vs torchattacks on the same model and data, in one run.

    python benchmarks/attack_speed.py --dataset mnist --data-root ../shared/data

Engines run interleaved (repeat 1 of every engine, then repeat 2, ...) so that load on a shared machine
hits them alike; each figure is the median over repeats, and ratios are taken within this one run.
"bare" is the cost floor: k forward+backward passes w.r.t. the input, with no attack bookkeeping.
Robust accuracy of each engine's output is printed beside the speed, as a check that all did the same work.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, markdown_table, median, timed  # noqa: E402

import trustkit  # noqa: E402
from trustkit.attacks import FGSM, PGD  # noqa: E402


def bare(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> torch.Tensor:
    """k forward+backward passes w.r.t. the input: the floor any gradient attack pays."""
    for p in model.parameters():
        p.requires_grad_(False)
    x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y, reduction="sum"), x_adv)
        x_adv = x_adv.detach() + 0.01 * grad.sign()
    for p in model.parameters():
        p.requires_grad_(True)
    return x_adv


def engines(model, eps: float, steps: int, batch_size: int, shape, classes: int) -> dict[str, Callable]:
    """name -> fn(x, y) returning adversarial examples, for every engine that is installed."""
    alpha = 2.5 * eps / steps
    is_fgsm = steps == 1

    def batched(fn):
        def run(x, y):
            return torch.cat([fn(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size)])
        return run

    ours = FGSM(eps) if is_fgsm else PGD(eps, alpha=alpha, steps=steps)
    found = {"trustkit": batched(lambda xb, yb: ours(model, xb, yb)),
             "bare": batched(lambda xb, yb: bare(model, xb, yb, steps))}
    try:
        import torchattacks

        ta = torchattacks.FGSM(model, eps=eps) if is_fgsm else torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps)
        found["torchattacks"] = batched(lambda xb, yb: ta(xb, yb))
    except ImportError:
        print("torchattacks not installed (pip install '.[bench]'): skipped", file=sys.stderr)
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescentPyTorch
    from art.estimators.classification import PyTorchClassifier

    device_type = "gpu" if torch.cuda.is_available() else "cpu"
    classifier = PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=shape,
                                   nb_classes=classes, clip_values=(0.0, 1.0), device_type=device_type)
    if is_fgsm:
        art_attack = FastGradientMethod(classifier, eps=eps, batch_size=batch_size)
    else:
        art_attack = ProjectedGradientDescentPyTorch(classifier, norm=np.inf, eps=eps, eps_step=alpha, max_iter=steps,
                                                     num_random_init=1, batch_size=batch_size, verbose=False)
    found["art"] = lambda x, y: torch.from_numpy(art_attack.generate(x.cpu().numpy(), y=y.cpu().numpy())).to(x.device)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--n", type=int, default=1000, help="images attacked per repeat")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--attacks", default="fgsm,pgd10", help="comma list of fgsm, pgdK (K steps)")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = trustkit.load_model(args.model, args.dataset, data_root=args.data_root, device=device)
    x, y = trustkit.load_dataset(args.dataset, "test", data_root=args.data_root).tensors(torch.arange(args.n))
    x, y = x.to(device), y.to(device)
    shape, classes = tuple(x.shape[1:]), int(model(x[:1]).shape[1])
    print(f"# {args.model} on {args.dataset}, {args.n} images, batch {args.batch_size}, eps {args.eps}, "
          f"median of {args.repeats}; {machine()}")
    rows = []
    for attack in args.attacks.split(","):
        steps = 1 if attack == "fgsm" else int(attack.removeprefix("pgd"))
        runs = engines(model, args.eps, steps, args.batch_size, shape, classes)
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        accuracy: dict[str, float] = {}
        for name, fn in runs.items():  # warm-up, and the accuracy of each engine's output
            torch.manual_seed(0)
            x_adv = fn(x, y)
            with torch.no_grad():
                accuracy[name] = (model(x_adv).argmax(1) == y).float().mean().item()
        for _ in range(args.repeats):
            for name, fn in runs.items():
                torch.manual_seed(0)
                seconds[name].append(timed(lambda: fn(x, y)))
        speed = {name: args.n / median(s) for name, s in seconds.items()}
        for name in runs:
            rows.append([attack, name, f"{speed[name]:.0f}", f"{speed[name] / speed['art']:.2f}",
                         f"{speed[name] / speed['torchattacks']:.2f}" if "torchattacks" in speed else "-",
                         f"{speed[name] / speed['bare']:.2f}", f"{accuracy[name]:.1%}"])
    print(markdown_table(["attack", "engine", "images/s", "vs ART", "vs torchattacks", "vs bare", "robust acc."], rows))


if __name__ == "__main__":
    main()
