"""Your own data at scale: torchvision ResNet-50 on a 224×224 image folder, peak memory against folder size.

    python benchmarks/own_data_scale.py --data-root ../shared/data --sizes 2000,20000,50000 --n 240 --workers 2

Builds (once, under ``--work``) folders of CIFAR-10 training images upscaled to 224×224 JPEGs — 10 class
sub-folders, ``--sizes`` images each — and runs, per folder and in a fresh process each,

    trustkit bench fgsm,pgd --model torchvision:resnet50 --dataset folder:DIR@224 --n N --workers W \
        --batch-size B --no-probes --no-cache --eps 1/255

(random weights: the figures are throughput and memory, not robustness; the attacks run on the images the
model gets right, about a tenth). With ``--labels model`` the folder is labelled by the model itself: a
ResNet-50 with seeded random weights (saved as safetensors and passed with ``--weights``) predicts every image
once, untimed, and the images are hard-linked into one sub-folder per predicted class, so the model classifies
the whole folder and every sampled image is attacked — the case of a user's own trained model, where the
attack, not the start-up, should fill the wall time. Folders larger than ``--label-base`` (2,000) hard-link
those labelled images in turn under new names, so only 2,000 images are ever predicted.

Printed per folder: attacked images per second of each attack, the peak resident memory of the process (RSS,
from the kernel's rusage of that process), wall time, time inside the attacks and its share of the wall time
(goal: >= 90%), and the time the loader takes to decode the sample with the same workers (the loader must not be
the bottleneck), and the RSS ratio between the largest and smallest folder (goal: within 10%).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, markdown_table  # noqa: E402
import torch  # noqa: E402


def build_folder(source: Path, target: Path, count: int) -> Path:
    """``count`` CIFAR-10 training images (classes in turn) upscaled bicubically to 224×224 JPEGs."""
    from PIL import Image

    if target.is_dir() and sum(1 for _ in target.rglob("*.jpg")) == count:
        return target
    classes = sorted(d.name for d in (source / "train").iterdir() if d.is_dir())
    files = {c: sorted((source / "train" / c).iterdir()) for c in classes}
    for index in range(count):
        name = classes[index % len(classes)]
        path = files[name][(index // len(classes)) % len(files[name])]
        (target / name).mkdir(parents=True, exist_ok=True)
        with Image.open(path) as image:
            image.convert("RGB").resize((224, 224), Image.BICUBIC).save(target / name / f"{index}.jpg", quality=90)
    return target


CLASSES = 10


def random_weights(path: Path, seed: int = 0) -> Path:
    """A seeded random-weights torchvision ResNet-50 with ``CLASSES`` outputs, saved as safetensors (once)."""
    import torchvision
    from safetensors.torch import save_file

    if not path.is_file():
        torch.manual_seed(seed)
        network = torchvision.models.get_model("resnet50", weights=None, num_classes=CLASSES)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(path))
    return path


def label_by_model(folder: Path, target: Path, weights: Path, workers: int, batch_size: int = 64) -> Path:
    """``folder``'s images hard-linked into ``target/class-KK/`` by the class the weights' model predicts.

    Every class folder exists, empty or not, so folder order matches the model's output order."""
    from trustkit.data import get_spec, load_dataset
    from trustkit.models.library import library_spec, load_library_model

    count = sum(1 for _ in folder.rglob("*.jpg"))
    if target.is_dir() and sum(1 for _ in target.rglob("*.jpg")) == count:
        return target
    model, _ = load_library_model(library_spec("torchvision:resnet50", weights=weights), CLASSES)
    os.environ["TRUSTKIT_WORKERS"] = str(workers)
    data = load_dataset(get_spec(f"folder:{folder}@224").name, "test")
    for k in range(CLASSES):
        (target / f"class-{k:02d}").mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        for start in range(0, len(data.files), batch_size):
            rows = torch.arange(start, min(start + batch_size, len(data.files)))
            images, _ = data.tensors(rows)
            for row, label in zip(rows.tolist(), model(images).argmax(1).tolist()):
                source = data.files[row]
                link = target / f"class-{label:02d}" / f"{source.parent.name}-{source.name}"
                if not link.exists():
                    os.link(source, link)
    return target


def replicate(base: Path, target: Path, count: int) -> Path:
    """A folder of ``count`` files hard-linked in turn from ``base``'s files, class folders kept: a large folder
    whose every image the model labelled, without predicting the copies again (the loader still opens, decodes
    and resizes each file it samples, as for distinct images)."""
    files = sorted(base.rglob("*.jpg"))
    if target.is_dir() and sum(1 for _ in target.rglob("*.jpg")) == count:
        return target
    for sub in base.iterdir():
        (target / sub.name).mkdir(parents=True, exist_ok=True)
    for index in range(count):
        source = files[index % len(files)]
        link = target / source.parent.name / f"{index // len(files)}-{source.name}"
        if not link.exists():
            os.link(source, link)
    return target


def run_once(folder: Path, n: int, workers: int, batch_size: int, home: Path, out: Path,
             weights: Path | None = None) -> dict[str, float]:
    model = ["--model", "torchvision:resnet50"]
    if weights is not None:
        model += ["--weights", str(weights), "--num-classes", str(CLASSES)]
    command = [str(Path(sys.executable).with_name("trustkit")), "-q", "bench", "fgsm,pgd", *model,
               "--dataset", f"folder:{folder}@224", "--n", str(n), "--workers", str(workers), "--no-probes",
               "--eps", "1/255", "--batch-size", str(batch_size), "--no-cache", "--out", str(out)]
    started = time.perf_counter()
    child = subprocess.Popen(command, env={**os.environ, "TRUSTKIT_HOME": str(home)})
    _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage: its peak RSS, not the maximum of all
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"trustkit bench failed with exit code {child.returncode}")
    peak_kb = usage.ru_maxrss  # kilobytes on Linux; DataLoader workers are the child's children, not counted
    run_dir = max(out.iterdir(), key=lambda p: p.stat().st_mtime)
    info = json.loads((run_dir / "run.json").read_text())
    import pandas as pd

    results = pd.read_csv(run_dir / "results.csv")
    seconds = results.groupby("attack")["seconds"].sum()
    # untargeted attacks run only on the images the model gets right (the others count as broken already)
    attacked = results.groupby("attack").apply(lambda g: round(float(g["clean_accuracy"].iloc[0]) * n)).clip(lower=1)
    return {"wall": wall, "peak_rss_mb": peak_kb / 1024, "attacked": int(attacked["pgd"]),
            "fgsm_ips": attacked["fgsm"] / seconds["fgsm"], "pgd_ips": attacked["pgd"] / seconds["pgd"],
            "attack_seconds": float(seconds.sum()), "total_seconds": info["timings_seconds"]["total"]}


def decode_seconds(folder: Path, n: int, workers: int) -> float:
    """Seconds to decode the run's sample of ``n`` images with ``workers`` processes (the loader's share)."""
    from trustkit.data import get_spec, load_dataset

    os.environ["TRUSTKIT_WORKERS"] = str(workers)
    spec = get_spec(f"folder:{folder}@224")
    data = load_dataset(spec.name, "test")
    index = data.sample(n, spec.default_n, 0)
    started = time.perf_counter()
    data.tensors(index)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, help="folder holding cifar10-jpeg/")
    parser.add_argument("--sizes", default="2000,20000")
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward/backward pass")
    parser.add_argument("--work", default="/tmp/trustkit-scale")
    parser.add_argument("--labels", default="folders", choices=["folders", "model"],
                        help="folders: CIFAR-10's classes (random weights get about a tenth right); model: label "
                             "each image by a seeded random-weights model's prediction and attack with its weights")
    parser.add_argument("--label-base", type=int, default=2000,
                        help="with --labels model: images the model labels; larger folders hard-link them in turn")
    args = parser.parse_args()
    work = Path(args.work)
    rows, peaks = [], []
    print(f"# ResNet-50 (torchvision, random weights) on 224×224 folders; {machine()}")
    for size in (int(s) for s in args.sizes.split(",")):
        tic = time.perf_counter()
        weights = None
        if args.labels == "model":
            weights = random_weights(work / "resnet50-random-seed0.safetensors")
            base = min(size, args.label_base)
            folder = build_folder(Path(args.data_root) / "cifar10-jpeg", work / f"folder-{base}", base)
            folder = label_by_model(folder, work / f"folder-{base}-model-labels", weights, args.workers)
            if size > base:
                folder = replicate(folder, work / f"folder-{size}-model-labels-from-{base}", size)
        else:
            folder = build_folder(Path(args.data_root) / "cifar10-jpeg", work / f"folder-{size}", size)
        print(f"folder of {size} images ready ({time.perf_counter() - tic:.0f} s)", flush=True)
        measured = run_once(folder, args.n, args.workers, args.batch_size, work / "home", work / "reports", weights)
        decode = decode_seconds(folder, args.n, args.workers)
        peaks.append(measured["peak_rss_mb"])
        rows.append([f"{size:,}", f"{args.n} ({measured['attacked']} attacked)", f"{measured['fgsm_ips']:.2f}",
                     f"{measured['pgd_ips']:.3f}", f"{measured['peak_rss_mb']:.0f} MB", f"{measured['wall']:.0f} s",
                     f"{measured['attack_seconds']:.0f} s ({measured['attack_seconds'] / measured['wall']:.0%})",
                     f"{decode:.1f} s"])
        print(rows[-1], flush=True)
    print(markdown_table(["folder images", "sample", "FGSM img/s", "PGD-10 img/s", "peak RSS", "wall",
                          "in attacks (share of wall)", "decoding the sample"], rows))
    print(f"peak RSS, largest / smallest folder: {peaks[-1] / peaks[0]:.3f} (goal <= 1.10)")


if __name__ == "__main__":
    main()
