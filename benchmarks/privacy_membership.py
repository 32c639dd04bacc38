"""Membership inference (loss / confidence threshold, ART black-box) and MIFace model inversion on trained models.

    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 TRUSTKIT_HOME=... \
        python benchmarks/privacy_membership.py --data-root ../shared/data --threads 1 --figures /tmp/mia-figures

For each ``dataset:checkpoint`` in --models (default: the store entries ``cnn-olivetti`` and ``cnn-mnist``,
which must be trustkit's own checkpoints in $TRUSTKIT_HOME/checkpoints; a zoo name such as ``cnn`` is trained
first if missing) it runs ``trustkit.privacy.membership.run_membership`` on --n seeded members (training
split) and as many non-members (test split; Olivetti's holds 80) and prints AUC, TPR at 1% / 0.1% FPR, the
train/test accuracy gap and the seconds per attack. Then MIFace (``run_model_inversion``) on each --inversion
model (default: the Olivetti cnn and, for contrast, the linear ``softmax`` zoo model, Fredrikson's setting)
for --classes, printing per class the target confidence, ART's step count, the seconds, and how the
representative correlates with the mean real training face of each person (rank 1 = most similar to its own
person's mean; a crude check, not the audit's re-identification score). --figures DIR writes the ROC and
gallery PNGs there.
"""
from __future__ import annotations

import argparse
import base64
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, markdown_table  # noqa: E402

from trustkit.data import get_spec, load_dataset  # noqa: E402
from trustkit.models.loading import resolve_model  # noqa: E402
from trustkit.privacy.membership import roc_figure, run_membership  # noqa: E402
from trustkit.privacy.model_inversion import gallery_figure, run_model_inversion  # noqa: E402
from trustkit.runtime import set_quiet  # noqa: E402
from trustkit.train.zoo import ensure_trained  # noqa: E402


def write_png(uri: str, path: Path) -> None:
    path.write_bytes(base64.b64decode(uri.split(",", 1)[1]))
    print(f"wrote {path}", flush=True)


def chance_sd(members: int, non_members: int) -> float:
    """Standard deviation of the AUC of a useless score (Mann-Whitney null, no ties): √((m+n+1)/(12·m·n))."""
    return ((members + non_members + 1) / (12 * members * non_members)) ** 0.5


def membership(dataset: str, checkpoint: str, args: argparse.Namespace) -> None:
    ensure_trained(checkpoint, dataset, device="cpu", data_root=args.data_root)
    loaded = resolve_model(checkpoint, dataset, data_root=args.data_root, device="cpu")
    meta = loaded.metadata
    print(f"\n## {checkpoint} on {dataset}: format={meta.get('format')} trustkit {meta.get('trustkit_version')}, "
          f"arch {meta.get('arch')}, recipe {meta.get('recipe', {}).get('recipe')} "
          f"{meta.get('recipe', {}).get('epochs')} epochs, test accuracy at training "
          f"{meta.get('metrics', {}).get('clean_accuracy')}", flush=True)
    train = load_dataset(dataset, "train", data_root=args.data_root)
    test = load_dataset(dataset, "test", data_root=args.data_root)
    started = time.perf_counter()
    result = run_membership(loaded.module, train, test, n=args.n, seed=args.seed, device="cpu",
                            art_attack_model=args.art_attack_model)
    wall = time.perf_counter() - started
    rows = [[r["attack"], f"{r['auc']:.3f}", f"{r['tpr_at_1pct_fpr']:.1%}", f"{r['tpr_at_0_1pct_fpr']:.1%}",
             f"{r['train_accuracy']:.1%}", f"{r['test_accuracy']:.1%}", f"{r['gap'] * 100:+.1f} pt",
             f"{r['members']}/{r['non_members']}", f"±{chance_sd(r['members'], r['non_members']):.3f}",
             f"{r['seconds']:.2f}"] for r in result.rows]
    print(markdown_table(["attack", "AUC", "TPR@1%FPR", "TPR@0.1%FPR", "train acc", "test acc", "gap",
                          "members/non-members scored", "AUC s.d. at chance", "seconds"], rows))
    print(f"run_membership wall time {wall:.1f} s (n={args.n}, seed={args.seed}, ART attack model "
          f"{args.art_attack_model})", flush=True)
    if args.figures:
        write_png(roc_figure(result), Path(args.figures) / f"roc-{checkpoint}.png")


def inversion(dataset: str, checkpoint: str, args: argparse.Namespace) -> None:
    ensure_trained(checkpoint, dataset, device="cpu", data_root=args.data_root)
    loaded = resolve_model(checkpoint, dataset, data_root=args.data_root, device="cpu")
    spec = get_spec(dataset)
    classes = [int(c) for c in args.classes.split(",")]
    x, y = load_dataset(dataset, "train", data_root=args.data_root).tensors()
    means = torch.stack([x[y == c].mean(0) for c in range(spec.num_classes)])
    for threshold in args.thresholds:
        started = time.perf_counter()
        result = run_model_inversion(loaded.module, spec, classes=classes, max_iter=args.max_iter,
                                     threshold=threshold, learning_rate=args.learning_rate, device="cpu")
        wall = time.perf_counter() - started
        centred = lambda t: torch.nn.functional.normalize((t - t.mean((1, 2, 3), keepdim=True)).flatten(1), dim=1)  # noqa: E731
        similarity = centred(result.images) @ centred(means).T  # K × classes, Pearson correlation
        rows = []
        for k, row in enumerate(result.rows):
            own = similarity[k, row["class"]].item()
            rank = int((similarity[k] > similarity[k, row["class"]]).sum()) + 1
            rows.append([row["class_name"], f"{row['target_confidence']:.3f}", row["iterations"],
                         f"{row['seconds']:.1f}", f"{own:+.2f}", f"{rank}/{spec.num_classes}"])
        print(f"\n## MIFace on {checkpoint}: max_iter {args.max_iter}, learning rate {args.learning_rate}, "
              f"threshold {threshold}, grey start (mean pixel {spec.mean[0]})")
        print(markdown_table(["class", "target confidence", "steps", "seconds", "corr. with own mean face",
                              "rank of own mean"], rows))
        confident = sum(r["target_confidence"] > 0.9 for r in result.rows)
        print(f"wall time {wall:.1f} s for {len(classes)} classes ({wall / len(classes):.1f} s per class); "
              f"{confident}/{len(classes)} above 0.9 confidence", flush=True)
        if args.figures:
            write_png(gallery_figure(result, means[classes]), Path(args.figures) / f"miface-{checkpoint}-thr{threshold}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--models", default="olivetti:cnn-olivetti,mnist:cnn-mnist",
                        help="comma-separated dataset:model pairs for membership inference ('' for none)")
    parser.add_argument("--n", type=int, default=500, help="members (and non-members) per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--art-attack-model", default="rf", choices=("rf", "nn"))
    parser.add_argument("--inversion", default="olivetti:cnn-olivetti,olivetti:softmax",
                        help="comma-separated dataset:model pairs for MIFace ('' for none)")
    parser.add_argument("--classes", default="0,1,2,3,4,5,9,22")
    parser.add_argument("--max-iter", type=int, default=1000)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--thresholds", type=lambda s: [float(t) for t in s.split(",")], default=[1.0],
                        help="ART MIFace thresholds to run (1.0 runs every step; ART's default is 0.99)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--figures", help="folder for the ROC / gallery PNGs")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.figures:
        os.makedirs(args.figures, exist_ok=True)
    set_quiet(True)
    print(f"# {machine()}; load average before {os.getloadavg()[0]:.2f}", flush=True)
    wall, cpu = time.perf_counter(), time.process_time()
    for pair in filter(None, args.models.split(",")):
        dataset, checkpoint = pair.split(":")
        membership(dataset, checkpoint, args)
    for pair in filter(None, args.inversion.split(",")):
        dataset, checkpoint = pair.split(":")
        inversion(dataset, checkpoint, args)
    print(f"\ntotal: {time.perf_counter() - wall:.1f} s wall, {time.process_time() - cpu:.1f} s CPU; "
          f"load average after {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
