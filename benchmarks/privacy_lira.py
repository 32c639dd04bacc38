"""LiRA (online, offline), RMIA and the loss threshold with shadow models, over several seeds.

    OMP_WAIT_POLICY=PASSIVE TRUSTKIT_HOME=$(mktemp -d) \
        python benchmarks/privacy_lira.py --dataset cifar10 --data-root ../shared/data --seeds 0,1,2 --json out.json

Each seed is one ``trustkit privacy membership`` run (the study in trustkit.studies.membership): a target and K
shadow models of --model trained on seeded random halves of a --pool of training images. Prints per attack the
median and range over seeds of AUC, TPR at 1% / 0.1% FPR and at 0 false positives, the target's train/test
accuracy, and the median training seconds per shadow model, beside the published CIFAR-10 anchor.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, markdown_table  # noqa: E402

from trustkit.engine import run  # noqa: E402
from trustkit.runtime import set_quiet  # noqa: E402
from trustkit.studies.membership import ANCHOR, MembershipConfig, membership_study  # noqa: E402


def spread(values: list[float], percent: bool = True) -> str:
    scale, unit = (100, "%") if percent else (1, "")
    digits = 2 if percent else 4
    if any(v != v for v in values):
        return "n/r"
    middle = statistics.median(values) * scale
    return f"{middle:.{digits}f}{unit} ({min(values) * scale:.{digits}f}–{max(values) * scale:.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--data-root")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--shadow-models", type=int, default=16)
    parser.add_argument("--pool", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=2)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", default="/tmp/lira-reports")
    parser.add_argument("--json")
    args = parser.parse_args()
    set_quiet(True)
    print(f"machine: {machine()}", flush=True)
    per_seed = []
    for seed in (int(s) for s in args.seeds.split(",")):
        tic = time.perf_counter()
        config = MembershipConfig(model=args.model, dataset=args.dataset, shadow_models=args.shadow_models,
                                  pool=args.pool, queries=args.queries, epochs=args.epochs, seed=seed,
                                  data_root=args.data_root, out=args.out, jobs=args.jobs,
                                  backend="processes" if args.jobs > 1 else "local")
        result = run(membership_study(config), out=args.out, jobs=args.jobs, backend=config.backend)
        results, models = result.tables["results.csv"], result.tables["models.csv"]
        shadows = models[models["role"] == "shadow"]
        per_seed.append({"seed": seed, "wall_seconds": time.perf_counter() - tic,
                         "shadow_seconds_median": float(shadows["seconds"].median()),
                         "rows": results.to_dict("records"), "report": str(result.report)})
        print(f"seed {seed}: {time.perf_counter() - tic:.0f} s, report {result.report}", flush=True)
        print(results[["attack", "auc", "tpr_at_1pct_fpr", "tpr_at_0_1pct_fpr", "tpr_at_0_fp"]].to_string(),
              flush=True)
    attacks = [row["attack"] for row in per_seed[0]["rows"]]
    table = []
    for attack in attacks:
        rows = [next(r for r in s["rows"] if r["attack"] == attack) for s in per_seed]
        table.append([attack, spread([r["auc"] for r in rows], percent=False),
                      spread([r["tpr_at_1pct_fpr"] for r in rows]), spread([r["tpr_at_0_1pct_fpr"] for r in rows]),
                      spread([r["tpr_at_0_fp"] for r in rows])])
    first = [s["rows"][0] for s in per_seed]
    print(f"\n{args.model} on {args.dataset}: pool {args.pool} ({first[0]['members']} members, "
          f"{first[0]['non_members']} non-members), {args.shadow_models} shadow models, {args.queries} queries; "
          f"seeds {args.seeds}; target train accuracy {spread([r['target_train_accuracy'] for r in first])}, "
          f"test {spread([r['target_test_accuracy'] for r in first])}; median shadow training "
          f"{statistics.median(s['shadow_seconds_median'] for s in per_seed):.1f} s per model; "
          f"wall {sum(s['wall_seconds'] for s in per_seed):.0f} s")
    print(markdown_table(["attack", "AUC", "TPR @ 1% FPR", "TPR @ 0.1% FPR", "TPR @ 0 FP"], table))
    print(f"published anchor: LiRA online, CIFAR-10 {ANCHOR['model']}, {ANCHOR['shadow_models']} shadows: AUC "
          f"{ANCHOR['auc']}, TPR {ANCHOR['tpr_at_0_1pct_fpr']:.2%} at 0.1% FPR")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "args": vars(args), "seeds": per_seed},
                                              indent=2, default=str))


if __name__ == "__main__":
    main()
