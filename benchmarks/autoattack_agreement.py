"""trustkit's ``strong`` beside an independent AutoAttack (torchattacks' port, standard version), in one run.

    python benchmarks/autoattack_agreement.py --model cnn-small-mnist-n-fgsm-eps0.3 --dataset mnist \
        --eps 0.3 --n 1000 --data-root ../shared/data

Both attack the same model and the first ``--n`` test images at the same budget. Printed per engine: robust
accuracy (fraction of all n images classified correctly before and after the attack), wall seconds, and which
member broke how many points (trustkit). The goal: trustkit's robust accuracy <= the reference's + 0.5 points
and trustkit >= 2x faster. trustkit runs first; both start from the same global seed.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

import trustkit  # noqa: E402
from trustkit.attacks import make_attack, parse_eps  # noqa: E402
from trustkit.attacks.evaluate import clean_predictions, run_attack  # noqa: E402
from trustkit.attacks.precision import attack_precision  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a store entry, checkpoint or zoo name")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--eps", default="0.3")
    parser.add_argument("--norm", default="linf", choices=["linf", "l2"])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                        help="trustkit's attack iterations (verdicts and robust accuracy stay fp32)")
    args = parser.parse_args()
    import torchattacks

    eps = parse_eps(args.eps)
    model = trustkit.load_model(args.model, args.dataset, data_root=args.data_root, device="cpu")
    x, y = trustkit.load_dataset(args.dataset, "test", args.data_root).tensors(torch.arange(args.n))
    clean = clean_predictions(model, x, batch_size=args.batch_size, device=torch.device("cpu"))
    print(f"# strong vs torchattacks AutoAttack (standard): {args.model} on {args.dataset}, {args.norm} eps "
          f"{args.eps}, first {args.n} test images; {machine()}")
    print(f"clean accuracy {(clean.label == y).float().mean():.2%}")

    torch.manual_seed(args.seed)
    attack = make_attack("strong", eps, args.norm)
    with attack_precision(args.precision, "cpu"):
        outcome = run_attack(model, attack, x, y, clean, batch_size=args.batch_size, device=torch.device("cpu"))
    ours = ((outcome.adversarial.label == y) & (clean.label == y)).float().mean().item()
    print(f"{'trustkit strong (' + args.precision + ')':36s} robust {ours:.2%}  {outcome.seconds:7.1f} s  broken by {outcome.broken_by}")

    with torch.no_grad():
        classes = int(model(x[:1]).shape[1])
    norm = "Linf" if args.norm == "linf" else "L2"
    # torchattacks' AutoAttack(version="standard") runs APGD, APGD-T and FAB with torchattacks' default of 10
    # steps; Croce & Hein's standard version runs 100. Both are timed: the shipped one, and its members at the
    # paper's budgets (the like-for-like comparison).
    shipped = torchattacks.AutoAttack(model, norm=norm, eps=eps, version="standard", n_classes=classes,
                                      seed=args.seed)
    paper = torchattacks.MultiAttack([
        torchattacks.APGD(model, norm=norm, eps=eps, steps=100, n_restarts=1, loss="ce", seed=args.seed),
        torchattacks.APGDT(model, norm=norm, eps=eps, steps=100, n_restarts=1, n_classes=classes, seed=args.seed),
        torchattacks.FAB(model, norm=norm, eps=eps, steps=100, n_restarts=1, multi_targeted=True,
                         n_classes=classes, seed=args.seed),
        torchattacks.Square(model, norm=norm, eps=eps, n_queries=5000, n_restarts=1, seed=args.seed)])
    for label, reference in (("torchattacks AA (shipped, 10 steps)", shipped),
                             ("torchattacks AA (paper's 100 steps)", paper)):
        torch.manual_seed(args.seed)
        started = time.perf_counter()
        adversarial = torch.cat([reference(x[i:i + args.batch_size], y[i:i + args.batch_size])
                                 for i in range(0, args.n, args.batch_size)])
        seconds = time.perf_counter() - started
        with torch.no_grad():
            theirs = ((model(adversarial).argmax(1) == y) & (clean.label == y)).float().mean().item()
        print(f"{label:36s} robust {theirs:.2%}  {seconds:7.1f} s  -> trustkit {100 * (ours - theirs):+.1f} points "
              f"(goal <= +0.5), speed-up {seconds / outcome.seconds:.2f}x (goal >= 2)")


if __name__ == "__main__":
    main()
