"""Feature-inversion leakage per layer, compared with He et al. 2019 ("Model inversion attacks against
collaborative inference", ACSAC): white-box rMLE on MNIST LeNet reaches PSNR 39.7 dB / SSIM 0.997 from conv1
and 15.1 dB / 0.600 from the deeper ReLU2.

    python benchmarks/privacy_audit.py --dataset mnist --data-root ../shared/data --n 32
    python benchmarks/privacy_audit.py --dataset olivetti --data-root ../shared/data --n 40

Runs trustkit's audit (``trustkit.engine.run_audit``) on the zoo ``cnn`` of the data set (trained and
cached if missing) over its layers from conv1 to relu3, and prints a markdown table per layer: PSNR (dB) and
SSIM of the reconstructions (mean over the victims, test images), re-identification top-1/top-5 by the
independent classifier (chance 1/K), attack seconds; plus membership-inference AUC when the module is present.
The full report folder is written too (``--out``). Victims are balanced over classes (40 on Olivetti = one photo
per person, unseen by the target and the re-identification classifier).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, markdown_table  # noqa: E402

from trustkit.engine import run_audit  # noqa: E402
from trustkit.privacy.audit import AuditConfig  # noqa: E402

HE_ET_AL = {"conv1": (39.7, 0.997), "relu2": (15.1, 0.600)}  # MNIST LeNet, white-box rMLE (He et al. 2019)
LAYERS = ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "fc1", "relu3"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--layers", default=",".join(LAYERS))
    parser.add_argument("--attacks", default="white-box")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--restarts", type=int, default=1)
    parser.add_argument("--inverse-steps", type=int, default=None)
    parser.add_argument("--membership-n", type=int, default=500)
    parser.add_argument("--no-membership", action="store_true")
    parser.add_argument("--model-inversion", action="store_true")
    parser.add_argument("--mitigations", default="none")
    parser.add_argument("--mitigation-layer", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="reports")
    args = parser.parse_args()

    started = time.perf_counter()
    config = AuditConfig(model=args.model, dataset=args.dataset, layers=args.layers.split(","),
                         attacks=args.attacks.split(","), n=args.n, whitebox_steps=args.steps,
                         whitebox_restarts=args.restarts, inverse_steps=args.inverse_steps,
                         mitigations=[] if args.mitigations == "none" else args.mitigations.split(","),
                         mitigation_layer=args.mitigation_layer,
                         membership=not args.no_membership, membership_n=args.membership_n,
                         model_inversion=args.model_inversion, device=args.device, data_root=args.data_root,
                         out=args.out)
    result = run_audit(config)
    wall = time.perf_counter() - started
    results = result.results
    layers, membership = result.tables["layers.csv"], result.tables["membership.csv"]
    reid = result.run_info["reid"]
    print(f"\n### Feature inversion per layer: {args.model} on {args.dataset} ({machine()})\n")
    print(f"{layers['n'].iloc[0]} victims (test split, balanced over classes); re-identification classifier: "
          f"{reid['test_accuracy']:.1%} top-1 on the held-out test split ({reid['what']}), "
          f"{reid['original_top1']:.0%} / {reid['original_top5']:.0%} top-1/top-5 on the original victims, chance "
          f"{reid['chance']:.1%}. Target test accuracy {result.run_info['clean_accuracy']:.2%}.\n")
    rows = []
    base = results[results["kind"] == "baseline"].iloc[0]
    rows.append(["mean image (baseline)", "–", "–", f"{base['psnr']:.1f}", f"{base['ssim']:.3f}",
                 f"{base['reid_top1']:.0%}", f"{base['reid_top5']:.0%}", "–", "–", "–"])
    plain = results[(results["kind"] == "attack") & (results["mitigation"] == "none")].sort_values(["layer_order",
                                                                                                   "attack"])
    risk = layers.set_index("layer")["risk"]
    for _, row in plain.iterrows():
        he = HE_ET_AL.get(row["layer"]) if args.dataset == "mnist" and row["attack"] == "white-box" else None
        rows.append([row["layer"], row["attack"], row["feature_shape"], f"{row['psnr']:.1f}", f"{row['ssim']:.3f}",
                     f"{row['reid_top1']:.0%}", f"{row['reid_top5']:.0%}", risk[row["layer"]],
                     f"{row['seconds'] + row.get('prepare_seconds', 0.0):.1f}",
                     f"{he[0]:.1f} / {he[1]:.3f}" if he else "–"])
    print(markdown_table(["layer", "attack", "features", "PSNR (dB)", "SSIM", "re-id top-1", "re-id top-5", "risk",
                          "seconds", "He et al. PSNR / SSIM"], rows))
    mitigated = results[(results["kind"] == "attack") & (results["mitigation"] != "none")]
    if len(mitigated):
        print(f"\nMitigations at {mitigated['layer'].iloc[0]} (utility = test accuracy with the mitigation):\n")
        print(markdown_table(["mitigation", "attack", "utility", "PSNR (dB)", "SSIM", "re-id top-1", "re-id top-5"],
                             [[r["mitigation"], r["attack"], f"{r['utility_accuracy']:.1%}", f"{r['psnr']:.1f}",
                               f"{r['ssim']:.3f}", f"{r['reid_top1']:.0%}", f"{r['reid_top5']:.0%}"]
                              for _, r in mitigated.iterrows()]))
    if len(membership):
        print()
        print(markdown_table(["membership attack", "AUC", "TPR @ 1% FPR", "TPR @ 0.1% FPR", "train acc", "test acc",
                              "gap"],
                             [[r["attack"], f"{r['auc']:.3f}", f"{r['tpr_at_1pct_fpr']:.1%}",
                               f"{r['tpr_at_0_1pct_fpr']:.1%}", f"{r['train_accuracy']:.1%}",
                               f"{r['test_accuracy']:.1%}", f"{r['gap']:.1%}"] for _, r in membership.iterrows()]))
    else:
        print(f"\nmembership inference: {result.run_info['membership_note']}")
    cells = pd.DataFrame([{"cell": r.cell.title(), "seconds": r.data["row"]["seconds"]} for r in result.output.finished
                          if "row" in r.data])
    slowest = ", ".join(f"{c} {s:.0f} s" for c, s in cells.nlargest(3, "seconds").itertuples(index=False)) \
        if len(cells) else "-"
    print(f"\nwall time {wall:.0f} s (slowest cells: {slowest}); report: {result.report}")


if __name__ == "__main__":
    main()
