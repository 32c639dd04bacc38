"""Common corruptions on MNIST: accuracy of the zoo models under the 15 corruptions × 5 severities, and the mCE
and relative mCE against a baseline model.

    python benchmarks/corruptions_mnist.py --data-root ../shared/data                   # the full run
    python benchmarks/corruptions_mnist.py --data-root ../shared/data --models mlp --n 100 \\
        --corruptions gaussian-noise,fog,pixelate --severities 1,3,5                    # a smoke test

Runs the corruptions study (``trustkit bench corruptions``; cached and resumable like it) with --models and the
--baseline (zoo names, trained on MNIST first when the store has none) on --n seeded MNIST test images. The
corrupted images are made once and shared by every model. Prints, and writes to --out (markdown), accuracy per
type × severity for each model, and mCE / relative mCE, with the machine and the seconds spent. The numbers are
not comparable with the published MNIST-C / CIFAR-10-C files (see docs/corruptions.md).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, markdown_table  # noqa: E402

from trustkit.corruptions import NOT_COMPARABLE, corruption_names  # noqa: E402
from trustkit.engine import run  # noqa: E402
from trustkit.studies.corruptions import CorruptionsConfig, corruptions_study  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--baseline", default="softmax")
    parser.add_argument("--corruptions", default=",".join(corruption_names()))
    parser.add_argument("--severities", default="1,2,3,4,5")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="reports/corruptions_mnist.md")
    args = parser.parse_args()
    if not (Path(args.data_root) / "MNIST").is_dir():
        sys.exit(f"MNIST not found under {args.data_root}; pass --data-root (see ../shared/data/README.md)")
    split = [s.strip() for s in args.models.split(",") if s.strip()]
    config = CorruptionsConfig(models=tuple(split), dataset="mnist", baseline=args.baseline,
                               corruptions=tuple(c for c in args.corruptions.split(",") if c.strip()),
                               severities=tuple(int(s) for s in args.severities.split(",") if s.strip()),
                               n=args.n, seed=args.seed, device=args.device, data_root=args.data_root)
    started = time.perf_counter()
    result = run(corruptions_study(config), out="reports", device=args.device)
    seconds = time.perf_counter() - started
    results, summary = result.tables["results.csv"], result.tables["summary.csv"]
    severities = sorted(s for s in results["severity"].unique() if s > 0)
    lines = [f"# Common corruptions on MNIST ({args.n} test images, seed {args.seed})", "",
             f"Machine: {machine()}. Wall time {seconds:.0f} s (cells computed {result.output.computed}, "
             f"from cache {sum(r.cached for r in result.output.records)}).", "", f"> {NOT_COMPARABLE}", "",
             f"## mCE relative to {args.baseline}", "",
             markdown_table(["model", "clean error", "mean corruption error", "mCE", "relative mCE"],
                            [[r["model"], f"{r['clean_error']:.1%}", f"{r['mean_corruption_error']:.1%}",
                              f"{r['mce']:.1%}", f"{r['relative_mce']:.1%}"] for _, r in summary.iterrows()]), ""]
    for model in summary["model"]:
        part = results[results["model"] == model]
        rows = []
        for name in dict.fromkeys(part.loc[part["corruption"] != "clean", "corruption"]):
            values = part[part["corruption"] == name].set_index("severity")["accuracy"]
            rows.append([name, *[f"{values[s]:.1%}" if s in values.index else "–" for s in severities]])
        clean = part.loc[part["corruption"] == "clean", "accuracy"]
        lines += [f"## {model}: accuracy per corruption and severity (clean {float(clean.iloc[0]):.1%})", "",
                  markdown_table(["corruption", *[f"s{s}" for s in severities]], rows), ""]
    text = "\n".join(lines)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(f"report: {result.report}\nmarkdown: {args.out}")


if __name__ == "__main__":
    main()
