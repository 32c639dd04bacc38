"""Attack throughput: trustkit vs ART vs torchattacks on the same model, data and parameters, in one run.

    python benchmarks/attack_speed.py --dataset mnist --model cnn --data-root ../shared/data
    python benchmarks/attack_speed.py --dataset cifar10 --model resnet20 --eps 8/255 --n 200 --data-root ../shared/data
    python benchmarks/attack_speed.py --dataset mnist --model cnn --curve 0.05,0.1,0.15,0.2,0.3 --attacks pgd10

Two questions, two tables:
- generation: images/s to produce adversarial examples for all n images. "trustkit" is the default (samples
  leave the batch once fooled); "trustkit-full" runs every sample for every step (early_stop=False), which is
  the like-for-like comparison with the other engines and with "bare": k forward+backward passes w.r.t. the
  input with no attack logic, the floor any k-step gradient attack pays.
- evaluation: seconds to measure robust accuracy. trustkit attacks only the still-correct images and drops
  each as soon as it is fooled (what `trustkit bench` does); ART generates for all images, then predicts.
- with --curve EPS,...: seconds for a whole robustness curve of each attack — trustkit as `trustkit bench` runs
  it (early stopping, and each larger ε attacks only what the smaller ones left standing), trustkit with every
  ε from scratch (`--independent-eps`), and torchattacks run once per ε on every image — with the robust
  accuracy at each ε.
Engines run interleaved (repeat r of every engine, then r+1 ...) so load on a shared machine hits them alike;
figures are medians over repeats and ratios are taken within this one run. Robust accuracy is printed beside
every figure as a check that all engines did the same work.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, markdown_table, median, timed  # noqa: E402

import trustkit  # noqa: E402
from trustkit.attacks import make_attack, parse_eps  # noqa: E402
from trustkit.attacks.art_bridge import art_classifier  # noqa: E402
from trustkit.attacks.evaluate import Settled, clean_predictions, run_attack  # noqa: E402

warnings.filterwarnings("ignore")
Engine = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def bare(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> torch.Tensor:
    """k forward+backward passes w.r.t. the input: the floor any k-step gradient attack pays."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y, reduction="sum"), x_adv)
        x_adv = x_adv.detach() + 0.01 * grad.sign()
    for p, flag in zip(model.parameters(), flags):
        p.requires_grad_(flag)
    return x_adv


def attack_config(name: str, eps: float) -> tuple[str, dict, int]:
    """(trustkit registry name, parameters, gradient steps) for a benchmark attack label."""
    if name == "fgsm":
        return "fgsm", {}, 1
    if name.startswith("pgd"):
        steps = int(name[3:])
        return "pgd", {"steps": steps, "alpha": 2.5 * eps / steps}, steps
    if name == "apgd":
        return "apgd-ce", {"steps": 100}, 100
    if name == "cw":
        return "cw", {"steps": 50, "binary_search_steps": 3, "initial_const": 0.1, "lr": 0.01, "abort_early": False}, 150
    raise SystemExit(f"unknown benchmark attack {name}")


def engines(name: str, model, eps: float, norm: str, batch_size: int, shape, classes: int) -> dict[str, Engine]:
    """engine -> fn(x, y) returning adversarial examples for every engine that has this attack."""
    registry_name, params, steps = attack_config(name, eps)

    def batched(fn: Engine) -> Engine:
        return lambda x, y: torch.cat([fn(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    ours = make_attack(registry_name, eps, norm, **params)
    found: dict[str, Engine] = {"trustkit": batched(lambda xb, yb: ours(model, xb, yb))}
    if hasattr(ours, "early_stop"):
        full = make_attack(registry_name, eps, norm, early_stop=False, **params)
        found["trustkit-full"] = batched(lambda xb, yb: full(model, xb, yb))
    found["bare"] = batched(lambda xb, yb: bare(model, xb, yb, steps))
    try:
        import torchattacks

        ta_norm = "Linf" if norm == "linf" else "L2"
        ta = {"fgsm": lambda: torchattacks.FGSM(model, eps=eps),
              "pgd": lambda: torchattacks.PGD(model, eps=eps, alpha=params.get("alpha", 0), steps=steps),
              "apgd-ce": lambda: torchattacks.APGD(model, norm=ta_norm, eps=eps, steps=100, loss="ce")}.get(registry_name)
        if ta is not None and (norm == "linf" or registry_name == "apgd-ce"):
            instance = ta()
            found["torchattacks"] = batched(lambda xb, yb: instance(xb, yb))
    except ImportError:
        print("torchattacks not installed (pip install '.[bench]'): skipped", file=sys.stderr)
    from art.attacks.evasion import (AutoProjectedGradientDescent, CarliniL2Method, FastGradientMethod,
                                     ProjectedGradientDescentPyTorch)

    classifier = art_classifier(model, shape, classes)
    art_norm = np.inf if norm == "linf" else 2
    art_attack = {
        "fgsm": lambda: FastGradientMethod(classifier, norm=art_norm, eps=eps, batch_size=batch_size),
        "pgd": lambda: ProjectedGradientDescentPyTorch(classifier, norm=art_norm, eps=eps, eps_step=params.get("alpha", 0),
                                                       max_iter=steps, num_random_init=1, batch_size=batch_size,
                                                       verbose=False),
        "apgd-ce": lambda: AutoProjectedGradientDescent(classifier, norm=art_norm, eps=eps, eps_step=2 * eps,
                                                        max_iter=100, nb_random_init=1, batch_size=batch_size,
                                                        loss_type="cross_entropy", verbose=False),
        "cw": lambda: CarliniL2Method(classifier, max_iter=50, binary_search_steps=3, initial_const=0.1,
                                      learning_rate=0.01, batch_size=batch_size, verbose=False),
    }[registry_name]()
    found["art"] = lambda x, y: torch.from_numpy(art_attack.generate(x.cpu().numpy(), y=y.cpu().numpy())).to(x.device)
    return found


def robust(model, x_adv, y) -> float:
    with torch.no_grad():
        return (model(x_adv).argmax(1) == y).float().mean().item()


def curve(model, attack: str, grid: list[float], norm: str, x: torch.Tensor, y: torch.Tensor, batch_size: int,
          repeats: int, device: torch.device) -> list[list[str]]:
    """Rows of the curve table for one attack over ``grid`` (see the module docstring)."""
    import torchattacks

    clean = clean_predictions(model, x.cpu(), batch_size=batch_size, device=device)
    correct = clean.label == y.cpu()

    def trustkit_curve(reuse: bool) -> list[float]:
        settled, accuracy = None, []
        for eps in grid:
            registry_name, params, _ = attack_config(attack, eps)
            torch.manual_seed(0)
            outcome = run_attack(model, make_attack(registry_name, eps, norm, **params), x.cpu(), y.cpu(), clean,
                                 batch_size=batch_size, device=device, settled=settled if reuse else None)
            settled = Settled.from_outcome(outcome, y.cpu(), None)
            accuracy.append(((outcome.adversarial.label == y.cpu()) & correct).float().mean().item())
        return accuracy

    def torchattacks_curve() -> list[float]:
        accuracy = []
        for eps in grid:
            _, params, steps = attack_config(attack, eps)
            ta = torchattacks.PGD(model, eps=eps, alpha=params["alpha"], steps=steps)
            torch.manual_seed(0)
            x_adv = torch.cat([ta(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size)])
            accuracy.append(robust(model, x_adv, y))
        return accuracy

    runs = {"trustkit (bench: early stop + curve reuse)": lambda: trustkit_curve(True),
            "trustkit, every ε from scratch": lambda: trustkit_curve(False),
            "torchattacks, once per ε": torchattacks_curve}
    accuracy = {name: fn() for name, fn in runs.items()}  # warm-up, and the figures
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            seconds[name].append(timed(fn))
    reference = median(seconds["torchattacks, once per ε"])
    return [[attack, name, f"{median(seconds[name]):.2f}", f"{reference / median(seconds[name]):.2f}×",
             " / ".join(f"{a:.1%}" for a in accuracy[name])] for name in runs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--n", type=int, default=500, help="images attacked per repeat")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--eps", default="0.3")
    parser.add_argument("--norm", default="linf")
    parser.add_argument("--attacks", default="fgsm,pgd10,pgd40,apgd,cw", help="comma list of fgsm, pgdK, apgd, cw")
    parser.add_argument("--cw-n", type=int, default=100, help="images for C&W (ART's C&W is slow)")
    parser.add_argument("--curve", default=None, help="an eps grid: time whole robustness curves instead (pgdK)")
    args = parser.parse_args()

    eps = parse_eps(args.eps)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = trustkit.load_model(args.model, args.dataset, data_root=args.data_root, device=device)
    x_all, y_all = trustkit.load_dataset(args.dataset, "test", data_root=args.data_root).tensors(torch.arange(args.n))
    x_all, y_all = x_all.to(device), y_all.to(device)
    shape, classes = tuple(x_all.shape[1:]), int(model(x_all[:1]).shape[1])
    print(f"# {args.model} on {args.dataset}, eps {args.eps} ({args.norm}), batch {args.batch_size}, median of "
          f"{args.repeats} interleaved repeats; {machine()}")
    if args.curve:
        grid = sorted(parse_eps(e) for e in args.curve.split(","))
        rows = [row for attack in args.attacks.split(",")
                for row in curve(model, attack, grid, args.norm, x_all, y_all, args.batch_size, args.repeats, device)]
        print(f"\n## robustness curve over eps {args.curve}\n")
        print(markdown_table(["attack", "engine", "seconds", "vs torchattacks", "robust accuracy per eps"], rows))
        return
    generation, evaluation = [], []
    for attack in args.attacks.split(","):
        n = min(args.cw_n, args.n) if attack == "cw" else args.n
        x, y = x_all[:n], y_all[:n]
        runs = engines(attack, model, eps, args.norm, args.batch_size, shape, classes)
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        accuracy: dict[str, float] = {}
        for name, fn in runs.items():  # warm-up; the accuracy of each engine's output
            torch.manual_seed(0)
            accuracy[name] = robust(model, fn(x, y), y)
        registry_name, params, _ = attack_config(attack, eps)
        ours = make_attack(registry_name, eps, args.norm, **params)

        def evaluate_trustkit() -> float:
            clean = clean_predictions(model, x.cpu(), batch_size=args.batch_size, device=device)
            outcome = run_attack(model, ours, x.cpu(), y.cpu(), clean, batch_size=args.batch_size, device=device)
            return ((outcome.adversarial.label == y.cpu()) & (clean.label == y.cpu())).float().mean().item()

        def evaluate_art() -> float:
            return robust(model, runs["art"](x, y), y)

        eval_seconds = {"trustkit": [], "art": []}
        eval_accuracy = {"trustkit": evaluate_trustkit(), "art": evaluate_art()}
        for _ in range(args.repeats):
            for name, fn in runs.items():
                torch.manual_seed(0)
                seconds[name].append(timed(lambda: fn(x, y)))
            torch.manual_seed(0)
            eval_seconds["trustkit"].append(timed(evaluate_trustkit))
            torch.manual_seed(0)
            eval_seconds["art"].append(timed(evaluate_art))
        speed = {name: n / median(s) for name, s in seconds.items()}
        for name in runs:
            generation.append([attack, n, name, f"{speed[name]:.0f}", f"{speed[name] / speed['art']:.2f}",
                               f"{speed[name] / speed['torchattacks']:.2f}" if "torchattacks" in speed else "–",
                               f"{speed[name] / speed['bare']:.2f}", "–" if name == "bare" else f"{accuracy[name]:.1%}"])
        t_ours, t_art = median(eval_seconds["trustkit"]), median(eval_seconds["art"])
        evaluation.append([attack, n, f"{t_ours:.2f}", f"{t_art:.2f}", f"{t_art / t_ours:.1f}×",
                           f"{eval_accuracy['trustkit']:.1%}", f"{eval_accuracy['art']:.1%}"])
    print("\n## generation\n")
    print(markdown_table(["attack", "n", "engine", "images/s", "vs ART", "vs torchattacks", "vs bare", "robust acc."],
                         generation))
    print("\n## robust-accuracy evaluation\n")
    print(markdown_table(["attack", "n", "trustkit s", "ART s", "speed-up", "robust acc. trustkit", "robust acc. ART"],
                         evaluation))


if __name__ == "__main__":
    main()
