"""Wall time of the README's main job, as a new user sees it: fresh store (trains ResNet-18), then cached.

    python benchmarks/first_run.py --repeats 3

Each repeat runs the installed console script in a new process (imports included) with an empty
TRUSTKIT_HOME, then once more with the checkpoint cached. Prints the median of each.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, median  # noqa: E402

COMMAND = ["trustkit", "-q", "bench", "fgsm", "--model", "resnet"]


def timed_run(home: str, out: str) -> float:
    started = time.perf_counter()
    subprocess.run(COMMAND + ["--out", out], check=True, env={**os.environ, "TRUSTKIT_HOME": home},
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    fresh, cached = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as out:
            fresh.append(timed_run(home, out))
            cached.append(timed_run(home, out))
    print(f"# {' '.join(COMMAND)}; {machine()}")
    print(f"fresh store (trains ResNet-18 on digits): median {median(fresh):.1f} s  runs {[round(t, 1) for t in fresh]}")
    print(f"cached checkpoint:                        median {median(cached):.1f} s  runs {[round(t, 1) for t in cached]}")


if __name__ == "__main__":
    main()
