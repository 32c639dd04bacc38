"""Calibration and OOD detection of the MNIST zoo models: ECE clean and under PGD, OOD AUROC against converted
faces and CIFAR-10 and against uniform noise.

    python benchmarks/calibration_mnist.py --data-root ../shared/data                  # the full run
    python benchmarks/calibration_mnist.py --data-root ../shared/data --models softmax --n 200   # a smoke test

Runs the calibration study (``trustkit bench calibration``; cached and resumable like it) once per model of
--models (zoo names, trained on MNIST first when the store has none) on --n seeded MNIST test images: ECE, MCE,
NLL, Brier on the clean images and on PGD's (L∞, --eps, default 0.2, whole budget), and max-softmax and energy AUROC against
--ood (faces: UTKFace 64×64 colour → 28×28 grey; cifar10: 32×32 colour → 28×28 grey; noise). Prints, and writes
to --out (markdown), one table of calibration and one of OOD detection, with the machine and the seconds spent.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, markdown_table  # noqa: E402

from trustkit.engine import run  # noqa: E402
from trustkit.studies.calibration import CalibrationConfig, calibration_study  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--models", default="softmax,mlp,cnn")
    parser.add_argument("--ood", default="faces,cifar10,noise")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--n-ood", type=int, default=None, help="images per OOD set (default: --n)")
    parser.add_argument("--eps", default=None, help="PGD L∞ budget (default: the study's, the middle of MNIST's "
                        "grid, 0.2)")
    parser.add_argument("--bins", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="reports/calibration_mnist.md")
    args = parser.parse_args()
    if not (Path(args.data_root) / "MNIST").is_dir():
        sys.exit(f"MNIST not found under {args.data_root}; pass --data-root (see ../shared/data/README.md)")

    config = CalibrationConfig(models=tuple(m for m in args.models.split(",") if m), dataset="mnist",
                               ood=tuple(o for o in args.ood.split(",") if o), attack="pgd", eps=args.eps,
                               norm="linf", bins=args.bins, n=args.n, n_ood=args.n_ood, batch_size=args.batch_size,
                               device=args.device, data_root=args.data_root, out="reports")
    started = time.perf_counter()
    result = run(calibration_study(config), out="reports", device=args.device)
    seconds = time.perf_counter() - started
    results, ood = result.tables["results.csv"], result.tables["ood.csv"]

    calibration_rows = []
    for model, part in results.groupby("model", sort=False):
        by = part.set_index("condition")
        clean, adversarial = by.loc["clean"], by.loc["adversarial"]
        calibration_rows.append([model, f"{clean['accuracy']:.1%}", f"{clean['ece']:.1%}", f"{clean['mce']:.1%}",
                                 f"{clean['nll']:.3f}", f"{clean['brier']:.3f}", f"{adversarial['accuracy']:.1%}",
                                 f"{adversarial['ece']:.1%}", f"{adversarial['mean_confidence_wrong']:.1%}"])
    ood_rows = []
    for (model, name), part in ood.groupby(["model", "ood_dataset"], sort=False):
        by = part.set_index("score")
        ood_rows.append([model, name, f"{by.loc['max_softmax', 'auroc']:.3f}", f"{by.loc['energy', 'auroc']:.3f}",
                         f"{by.loc['max_softmax', 'fpr_at_95_tpr']:.1%}", f"{by.loc['energy', 'fpr_at_95_tpr']:.1%}",
                         part["conversion"].iloc[0]])
    cells = result.run_info["cells"]
    text = "\n\n".join([
        f"## Calibration and OOD detection, MNIST zoo models ({int(results['n'].iloc[0])} test images, "
        f"PGD L∞ eps {result.run_info['config']['eps']:g}, {args.bins} bins)",
        markdown_table(["model", "clean acc", "clean ECE", "clean MCE", "clean NLL", "clean Brier", "PGD acc",
                        "PGD ECE", "PGD conf. of wrong"], calibration_rows),
        markdown_table(["model", "OOD set", "AUROC max-softmax", "AUROC energy", "FPR@95TPR max-softmax",
                        "FPR@95TPR energy", "conversion"], ood_rows),
        f"Machine: {machine()}. {seconds:.0f} s in all ({cells['computed']} cells computed, "
        f"{cells['from_cache']} from the cache; training of models missing from the store included). "
        f"Report: {result.report}",
    ])
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n", encoding="utf-8")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
